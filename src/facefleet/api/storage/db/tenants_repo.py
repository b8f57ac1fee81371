"""Tenant rows: settings and the gallery version workers reload by."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import Tenant


async def bump_gallery_version(session: AsyncSession, tenant_id: str) -> int:
    await session.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id)
        .values(gallery_version=Tenant.gallery_version + 1)
        .execution_options(synchronize_session=False)
    )
    return await gallery_version(session, tenant_id)


async def gallery_version(session: AsyncSession, tenant_id: str) -> int:
    version = await session.scalar(select(Tenant.gallery_version).where(Tenant.id == tenant_id))
    return int(version or 0)


async def tenant(session: AsyncSession, tenant_id: str) -> Tenant:
    return await session.get_one(Tenant, tenant_id)

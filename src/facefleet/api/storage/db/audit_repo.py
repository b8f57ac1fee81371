"""The gallery audit: what was erased, promoted or pruned, as ids and counts only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import GalleryAudit


def record(
    session: AsyncSession,
    tenant_id: str,
    action: str,
    *,
    person_id: int | None = None,
    stranger_id: int | None = None,
    key_id: int | None = None,
    **counts: int,
) -> GalleryAudit:
    row = GalleryAudit(
        tenant_id=tenant_id,
        action=action,
        person_id=person_id,
        stranger_id=stranger_id,
        key_id=key_id,
        detail=dict(counts),
    )
    session.add(row)
    return row


async def page(
    session: AsyncSession, tenant_id: str, action: str | None, offset: int, limit: int
) -> tuple[list[GalleryAudit], int]:
    where: list[Any] = [GalleryAudit.tenant_id == tenant_id]
    if action is not None:
        where.append(GalleryAudit.action == action)
    total = await session.scalar(select(func.count()).select_from(GalleryAudit).where(*where))
    rows = await session.scalars(
        select(GalleryAudit)
        .where(*where)
        .order_by(GalleryAudit.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all()), int(total or 0)

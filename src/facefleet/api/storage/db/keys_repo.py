"""API key rows: the hash and prefix of each key, its role, expiry and revocation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import ApiKey


async def insert(
    session: AsyncSession,
    *,
    tenant_id: str,
    role: str,
    key_hash: str,
    key_prefix: str,
    label: str,
    expires_at: datetime | None = None,
) -> ApiKey:
    row = ApiKey(
        tenant_id=tenant_id,
        role=role,
        key_hash=key_hash,
        key_prefix=key_prefix,
        label=label,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return row


async def usable(session: AsyncSession, key_hash: str, now: datetime) -> ApiKey | None:
    """The key with this hash, unless it is revoked or expired."""
    row: ApiKey | None = await session.scalar(
        select(ApiKey).where(
            ApiKey.key_hash == key_hash,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    )
    return row


async def of_tenant(session: AsyncSession, tenant_id: str) -> list[ApiKey]:
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.id)
    )
    return list(rows)


async def one(
    session: AsyncSession, tenant_id: str, key_id: int, *, for_update: bool = False
) -> ApiKey | None:
    query = select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
    if for_update:
        query = query.with_for_update()
    row: ApiKey | None = await session.scalar(query)
    return row


async def note_use(session: AsyncSession, key_id: int, at: datetime) -> None:
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < at))
        .values(last_used_at=at)
        .execution_options(synchronize_session=False)
    )

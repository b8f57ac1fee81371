"""Tenants and their API keys."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.clock import to_datetime
from facefleet.api.errors import Conflict, FacefleetError
from facefleet.api.security import Principal, Role, hash_secret, key_prefix, new_key
from facefleet.api.storage.db import keys_repo
from facefleet.api.storage.db.models import ApiKey, Tenant

TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class InvalidTenantName(FacefleetError):
    status_code = 422


@dataclass(frozen=True)
class CreatedTenant:
    id: str
    name: str
    keys: dict[Role, str]


async def create_tenant(session: AsyncSession, name: str) -> CreatedTenant:
    if not TENANT_NAME.match(name):
        raise InvalidTenantName(
            "tenant name must be 1-64 characters of letters, digits, '.', '_' or '-'"
        )
    if await session.scalar(select(Tenant.id).where(Tenant.name == name)):
        raise Conflict(f"tenant {name!r} already exists")
    tenant = Tenant(id=uuid.uuid4().hex, name=name)
    session.add(tenant)
    await session.flush()
    keys: dict[Role, str] = {}
    for role in Role:
        keys[role] = (await add_key(session, tenant.id, role))[1]
    return CreatedTenant(tenant.id, name, keys)


async def add_key(
    session: AsyncSession,
    tenant_id: str,
    role: Role,
    label: str = "",
    *,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key of the tenant: its row and the key itself (shown once, never stored)."""
    key = new_key(role)
    row = await keys_repo.insert(
        session,
        tenant_id=tenant_id,
        role=role.value,
        key_hash=hash_secret(key),
        key_prefix=key_prefix(key),
        label=label or role.value,
        expires_at=expires_at,
    )
    return row, key


@dataclass(frozen=True)
class VerifiedKey:
    principal: Principal
    last_used_at: datetime | None


async def verify_key(session: AsyncSession, key: str, *, now: float) -> VerifiedKey | None:
    """The key's principal and last use, unless it is unknown, revoked or expired."""
    row = await keys_repo.usable(session, hash_secret(key), to_datetime(now))
    if row is None:
        return None
    principal = Principal(
        tenant_id=row.tenant_id,
        role=Role(row.role),
        key_id=row.id,
        expires_at=row.expires_at.timestamp() if row.expires_at is not None else None,
    )
    return VerifiedKey(principal, row.last_used_at)


async def any_tenant(session: AsyncSession) -> bool:
    return (await session.scalar(select(Tenant.id).limit(1))) is not None

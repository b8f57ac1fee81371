"""Creating, listing, rotating and revoking the keys of the caller's tenant.

Keys are generated here and shown once; the database keeps their hash and prefix
(``security.py``). A key stops working when it is revoked or its expiry passes; both reach
every replica's auth cache at once (``propagation.py``).
"""

from __future__ import annotations

from datetime import datetime

from facefleet.api.clock import to_datetime
from facefleet.api.errors import Conflict, FacefleetError, NotFound
from facefleet.api.keys import schemas
from facefleet.api.keys.propagation import announce_end
from facefleet.api.security import Principal, Role
from facefleet.api.state import AppState
from facefleet.api.storage.db import keys_repo
from facefleet.api.storage.db.models import ApiKey
from facefleet.api.tenants.service import add_key
from facefleet.api.unit_of_work import UnitOfWork


class InvalidKeyRequest(FacefleetError):
    status_code = 422


def status_of(row: ApiKey, now: datetime) -> schemas.KeyStatus:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


class KeyService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    def _out(self, row: ApiKey) -> schemas.KeyOut:
        return schemas.KeyOut(
            id=row.id,
            prefix=row.key_prefix,
            role=Role(row.role),
            name=row.label,
            status=status_of(row, to_datetime(self.state.clock())),
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
        )

    def _expiry(self, req: schemas.KeyCreate | schemas.KeyRotate) -> datetime | None:
        now = self.state.clock()
        if req.ttl_seconds is not None:
            return to_datetime(now + req.ttl_seconds)
        if req.expires_at is None:
            return None
        at = req.expires_at.timestamp()
        if at <= now:
            raise InvalidKeyRequest("expires_at is in the past")
        if at > now + schemas.MAX_TTL_SECONDS:
            raise InvalidKeyRequest("expires_at is more than ten years away")
        return to_datetime(at)

    async def _key(self, uow: UnitOfWork, principal: Principal, key_id: int) -> ApiKey:
        row = await keys_repo.one(uow.session, principal.tenant_id, key_id, for_update=True)
        if row is None:
            raise NotFound(f"no API key {key_id}")
        return row

    def _announce(self, uow: UnitOfWork, key_id: int, at: float) -> None:
        async def announce() -> None:
            await announce_end(self.state, key_id, at)

        uow.after_commit(announce)

    async def create(
        self, uow: UnitOfWork, principal: Principal, req: schemas.KeyCreate
    ) -> schemas.KeyCreated:
        row, key = await add_key(
            uow.session, principal.tenant_id, req.role, req.name, expires_at=self._expiry(req)
        )
        return schemas.KeyCreated(**self._out(row).model_dump(), key=key)

    async def list(self, uow: UnitOfWork, principal: Principal) -> schemas.KeyList:
        rows = await keys_repo.of_tenant(uow.session, principal.tenant_id)
        return schemas.KeyList(items=[self._out(row) for row in rows])

    async def revoke(self, uow: UnitOfWork, principal: Principal, key_id: int) -> schemas.KeyOut:
        """Revoke a key (again: nothing changes). A tenant keeps one working admin key."""
        row = await self._key(uow, principal, key_id)
        if row.revoked_at is None:
            now = self.state.clock()
            if row.role == Role.admin and status_of(row, to_datetime(now)) == "active":
                await self._keep_an_admin(uow, principal, row)
            row.revoked_at = to_datetime(now)
            await uow.session.flush()
            self._announce(uow, row.id, now)
        return self._out(row)

    async def _keep_an_admin(self, uow: UnitOfWork, principal: Principal, row: ApiKey) -> None:
        now = to_datetime(self.state.clock())
        others = [
            other
            for other in await keys_repo.of_tenant(uow.session, principal.tenant_id)
            if other.id != row.id and other.role == Role.admin and status_of(other, now) == "active"
        ]
        if not others:
            raise Conflict(
                f"key {row.id} is the tenant's last working admin key: create or rotate "
                "another admin key first"
            )

    async def rotate(
        self, uow: UnitOfWork, principal: Principal, key_id: int, req: schemas.KeyRotate
    ) -> schemas.KeyRotated:
        """A new key with the old one's role and name; the old one is revoked at once, or
        expires after ``overlap_seconds``."""
        old = await self._key(uow, principal, key_id)
        now = self.state.clock()
        status = status_of(old, to_datetime(now))
        if status != "active":
            raise Conflict(f"key {key_id} is {status}: create a new key instead")
        new, key = await add_key(
            uow.session,
            principal.tenant_id,
            Role(old.role),
            old.label,
            expires_at=self._expiry(req),
        )
        end = now + req.overlap_seconds
        if req.overlap_seconds == 0:
            old.revoked_at = to_datetime(now)
        elif old.expires_at is None or old.expires_at.timestamp() > end:
            old.expires_at = to_datetime(end)
        await uow.session.flush()
        ends = end if old.expires_at is None else min(end, old.expires_at.timestamp())
        self._announce(uow, old.id, ends)
        return schemas.KeyRotated(
            old=self._out(old), new=schemas.KeyCreated(**self._out(new).model_dump(), key=key)
        )

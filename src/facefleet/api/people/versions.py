"""Each tenant's gallery version for heartbeat responses, without a query per heartbeat:
read from the database at most once per ``ttl`` per tenant, and set directly on edits."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from facefleet.api.storage.db import people_repo


class GalleryVersions:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: float = 2.0) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._cache: dict[str, tuple[int, float]] = {}

    def set(self, tenant_id: str, version: int) -> None:
        self._cache[tenant_id] = (version, time.monotonic())

    async def get(self, tenant_id: str) -> int:
        cached = self._cache.get(tenant_id)
        if cached is not None and time.monotonic() - cached[1] < self._ttl:
            return cached[0]
        try:
            async with self._sessions() as session:
                version = await people_repo.gallery_version(session, tenant_id)
                await session.rollback()
        except Exception:
            # The heartbeat must not fail for this: the last known version will do.
            return cached[0] if cached else 0
        self.set(tenant_id, version)
        return version

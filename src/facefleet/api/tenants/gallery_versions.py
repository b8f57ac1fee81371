"""Each tenant's gallery version for heartbeat responses, without a query per heartbeat.

Heartbeats are answered from memory; a version older than ``ttl`` is refreshed from the
database in the background, so a slow or unreachable database never holds a heartbeat
up. Edits on this replica set the new version directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from facefleet.api.storage.db import tenants_repo
from facefleet.api.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from facefleet.api.state import AppState

log = logging.getLogger(__name__)


class GalleryVersions:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: float = 2.0) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._cache: dict[str, tuple[int, float]] = {}
        self._refreshing: dict[str, asyncio.Task[int]] = {}

    def set(self, tenant_id: str, version: int) -> None:
        self._cache[tenant_id] = (version, time.monotonic())

    def get(self, tenant_id: str) -> int | None:
        """The tenant's version as last read, refreshed in the background when older than the
        ttl; None until the first read lands (a heartbeat never waits for the database)."""
        cached = self._cache.get(tenant_id)
        if cached is None or time.monotonic() - cached[1] >= self._ttl:
            self._refresh(tenant_id)
        return cached[0] if cached is not None else None

    def _refresh(self, tenant_id: str) -> asyncio.Task[int]:
        task = self._refreshing.get(tenant_id)
        if task is None or task.done():
            task = asyncio.create_task(self._read(tenant_id))
            # A failed refresh is retried on the next heartbeat; its error is logged, not raised.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._refreshing[tenant_id] = task
        return task

    async def _read(self, tenant_id: str) -> int:
        try:
            async with self._sessions() as session:
                version = await tenants_repo.gallery_version(session, tenant_id)
                await session.rollback()
        except Exception as exc:
            log.debug("gallery version of %s not refreshed: %s", tenant_id, exc)
            raise
        self.set(tenant_id, version)
        return version


async def gallery_changed(state: AppState, uow: UnitOfWork, tenant_id: str) -> int:
    """Bump the tenant's gallery version (workers reload their gallery when it changes)."""
    version = await tenants_repo.bump_gallery_version(uow.session, tenant_id)

    async def publish() -> None:
        state.gallery_versions.set(tenant_id, version)
        await state.events.publish(tenant_id, "gallery_changed", {"version": version})

    uow.after_commit(publish)
    return version

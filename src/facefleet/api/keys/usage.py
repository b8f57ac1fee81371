"""When each key was last used, kept cheaply: a replica writes it when it verifies the key
(on first use, then every half auth cache time while the key is in use) and only when the
stored time is over a minute old, so a key costs at most one small write a minute per
replica, off the request's path."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from facefleet.api.clock import to_datetime
from facefleet.api.storage.db import keys_repo

log = logging.getLogger(__name__)

# A stored last use younger than this is not written again.
PRECISION = 60.0


class KeyUsage:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._writing: dict[int, asyncio.Task[None]] = {}

    def seen(self, key_id: int, stored: datetime | None, now: float) -> None:
        """The key was verified at ``now``; ``stored`` is its last use as the database had it."""
        if stored is not None and now - stored.timestamp() < PRECISION:
            return
        if key_id in self._writing:
            return
        task = asyncio.create_task(self._write(key_id, to_datetime(now)))
        self._writing[key_id] = task
        task.add_done_callback(lambda _: self._writing.pop(key_id, None))

    async def close(self) -> None:
        """Let the writes under way finish (before the engine goes)."""
        await asyncio.gather(*self._writing.values(), return_exceptions=True)

    async def _write(self, key_id: int, at: datetime) -> None:
        try:
            async with self._sessions() as session:
                await keys_repo.note_use(session, key_id, at)
                await session.commit()
        except Exception as exc:  # bookkeeping only: the next verification tries again
            log.debug("last use of key %d not recorded: %s", key_id, type(exc).__name__)

"""Write-behind: last_seen_at and the latest metrics of every worker that heartbeated,
flushed in one batched statement, plus audit rows produced on the hot path.

Liveness and the ids of delivered commands sit in the hot store, shared by the replicas:
only the leader flushes them. Audit rows are this process's own, so every replica flushes
those."""

from __future__ import annotations

import logging

from facefleet.api.background.leader import Leadership
from facefleet.api.background.loops import outage
from facefleet.api.clock import to_datetime
from facefleet.api.state import AppState
from facefleet.api.storage.db import commands_repo, events_repo, workers_repo
from facefleet.api.storage.hot.base import DirtyLiveness

log = logging.getLogger(__name__)


class Flusher:
    def __init__(self, state: AppState, leadership: Leadership | None = None) -> None:
        self.state = state
        self._leadership = leadership
        self._retry: dict[int, DirtyLiveness] = {}
        self._retry_delivered: list[int] = []

    async def _leads(self, *, confirm: bool) -> bool:
        if self._leadership is None:
            return True
        if confirm:
            return await self._leadership.confirm()
        return self._leadership.leading()

    async def run_once(self) -> int:
        now = self.state.clock()
        batch: dict[int, DirtyLiveness] = {}
        delivered = self._retry_delivered
        if await self._leads(confirm=False):
            dirty = {d.pk: d for d in await self.state.hot.take_dirty()}
            batch = {**self._retry, **dirty}
            delivered = sorted({*delivered, *await self.state.hot.take_delivered()})
        self._retry = {}
        self._retry_delivered = []
        if batch and not await self._leads(confirm=True):
            # Lost the lock meanwhile: the new leader flushes these workers' next heartbeats.
            batch = {}
        audit = self.state.audit.take()
        if not batch and not audit and not delivered:
            return 0
        rows = [
            workers_repo.liveness_row(d.pk, to_datetime(d.last_seen), d.metrics)
            for d in batch.values()
        ]
        try:
            async with self.state.sessions() as session:
                await workers_repo.flush_liveness(session, rows)
                await commands_repo.mark_delivered(session, delivered, to_datetime(now))
                for entry in audit:
                    if entry.kind == "recovered":
                        await workers_repo.set_status(
                            session, entry.worker_pk, "online", only_if="suspect"
                        )
                    events_repo.record(
                        session, entry.tenant_id, entry.worker_pk, entry.kind, **entry.detail
                    )
                await session.commit()
        except Exception as exc:
            if (why := outage(exc)) is not None:
                log.warning("write-behind flush failed (%s); keeping %d rows", why, len(rows))
            else:
                log.exception(
                    "write-behind flush failed; keeping %d rows for the next one", len(rows)
                )
            self._retry = batch
            self._retry_delivered = delivered
            self.state.audit.put_back(audit)
            return 0
        self._retry = {}
        return len(rows)

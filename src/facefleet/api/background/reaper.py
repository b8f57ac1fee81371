"""The reaper: online -> suspect after missed heartbeats -> offline when the lease TTL
passes, releasing the offline worker's cameras in the database and recording each step."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from facefleet.api.state import AppState
from facefleet.api.storage.db import events_repo, leases_repo, workers_repo
from facefleet.api.storage.hot.base import LIVE_STATUSES, LiveWorker, WorkerStatus
from facefleet.api.workers.service import to_datetime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transition:
    tenant_id: str
    worker_id: str
    from_status: str
    to_status: str
    released_cameras: list[int] = field(default_factory=list)


def predict(worker: LiveWorker, now: float, suspect_after: float) -> Transition | None:
    """What a pass would do to this worker, without doing it (the dry run)."""
    if worker.status not in LIVE_STATUSES:
        if worker.status == WorkerStatus.offline and worker.leases:
            return Transition(
                worker.tenant_id, worker.worker_id, "offline", "offline", sorted(worker.leases)
            )
        return None
    if now >= worker.deadline:
        return Transition(
            worker.tenant_id,
            worker.worker_id,
            worker.status.value,
            "offline",
            sorted(worker.leases),
        )
    if worker.status == WorkerStatus.online and now - worker.last_seen >= suspect_after:
        return Transition(worker.tenant_id, worker.worker_id, "online", "suspect")
    return None


class Reaper:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def dry_run(self, tenant_id: str) -> list[Transition]:
        now = self.state.clock()
        workers = await self.state.hot.list_workers(tenant_id)
        found = (predict(w, now, self.state.settings.suspect_after) for w in workers)
        return [t for t in found if t is not None]

    async def run_once(self) -> list[Transition]:
        hot = self.state.hot
        now = self.state.clock()
        swept = await hot.sweep(now=now, suspect_after=self.state.settings.suspect_after)
        transitions: list[Transition] = []
        if swept.suspect:
            async with self.state.sessions() as session:
                for worker in swept.suspect:
                    if await workers_repo.set_status(session, worker.pk, "suspect"):
                        events_repo.record(
                            session,
                            worker.tenant_id,
                            worker.pk,
                            "suspect",
                            silent_for=round(now - worker.last_seen, 3),
                        )
                    transitions.append(
                        Transition(worker.tenant_id, worker.worker_id, "online", "suspect")
                    )
                await session.commit()
        # Workers swept now plus any whose release failed on an earlier pass.
        pending = {w.key: w for w in await hot.offline_with_leases()}
        for worker in swept.expired:
            pending.setdefault(worker.key, worker)
        expired_keys = {w.key: w.status for w in swept.expired}
        for worker in pending.values():
            released = await self._take_offline(worker, now)
            if released is None:
                continue
            transitions.append(
                Transition(
                    worker.tenant_id,
                    worker.worker_id,
                    "suspect" if worker.key in expired_keys else "offline",
                    "offline",
                    released,
                )
            )
        return transitions

    async def _take_offline(self, worker: LiveWorker, now: float) -> list[int] | None:
        hot = self.state.hot
        now_dt = to_datetime(now)
        try:
            async with self.state.sessions() as session:
                row = await leases_repo.lock_worker(session, worker.pk)
                if row is None or row.session_hash != worker.session_hash:
                    # Re-registered meanwhile: the registration settled its old leases.
                    return []
                released = await leases_repo.release_all(session, worker.pk, now_dt)
                for held in released:
                    events_repo.record(
                        session,
                        worker.tenant_id,
                        worker.pk,
                        "camera_released",
                        camera_id=held.camera_id,
                        epoch=held.epoch,
                        reason="lease expired",
                    )
                await workers_repo.set_status(session, worker.pk, WorkerStatus.offline.value)
                events_repo.record(
                    session,
                    worker.tenant_id,
                    worker.pk,
                    "offline",
                    silent_for=round(now - worker.last_seen, 3),
                )
                await session.commit()
        except Exception:
            log.exception("reaper could not release %s; retrying next pass", worker.key)
            return None
        # The database is the owner now: the hot record is dropped, and a later heartbeat
        # from this worker is told to register again.
        current = await hot.get_worker(worker.tenant_id, worker.worker_id)
        if current is not None and current.status == WorkerStatus.offline:
            await hot.remove_worker(worker.tenant_id, worker.worker_id)
        return sorted({h.camera_id for h in released} | set(worker.leases))

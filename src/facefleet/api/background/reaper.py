"""The reaper: online -> suspect after missed heartbeats -> offline when the lease TTL (or an
operator's shutdown deadline) passes, releasing the worker's cameras in the database and
recording each step. It also drains draining workers one camera at a time and expires
unacknowledged commands."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.background.anti_entropy import full_pass
from facefleet.api.background.leader import Leadership, LostLeadership, ensure_leading
from facefleet.api.background.leader_requests import LeaderRequests
from facefleet.api.background.loops import outage
from facefleet.api.background.recovery import rebuild_hot_store
from facefleet.api.clock import to_datetime
from facefleet.api.errors import ServiceUnavailable
from facefleet.api.events.broker import camera_released
from facefleet.api.revocation import revoke
from facefleet.api.state import AppState
from facefleet.api.storage.db import commands_repo, events_repo, leases_repo, workers_repo
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.protocol.enums import LIVE_STATUSES, WorkerStatus

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
    if worker.is_expired(now):
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
    def __init__(
        self,
        state: AppState,
        leadership: Leadership | None = None,
        requests: LeaderRequests | None = None,
    ) -> None:
        self.state = state
        self._leadership = leadership
        self._requests = requests
        self._last_drain_step: dict[str, float] = {}
        self._passes = 0
        # Passes never overlap: the periodic one and one an operator asked for.
        self._lock = asyncio.Lock()

    async def _commit(self, session: AsyncSession) -> None:
        # A replica that lost the leader lock meanwhile must not act on the database.
        await ensure_leading(self._leadership)
        await session.commit()

    async def dry_run(self, tenant_id: str) -> list[Transition]:
        now = self.state.clock()
        workers = await self.state.hot.list_workers(tenant_id)
        found = (predict(w, now, self.state.settings.suspect_after) for w in workers)
        return [t for t in found if t is not None]

    async def run_once(self, tenant_id: str | None = None) -> list[Transition]:
        """One pass over every tenant, or over one (an operator's cleanup). A periodic pass
        first answers the cleanups other replicas asked this leader for."""
        async with self._lock:
            if tenant_id is None and self._requests is not None:
                await self._answer_requests(self._requests)
            return await self._pass(tenant_id)

    async def _answer_requests(self, requests: LeaderRequests) -> None:
        for request in await requests.take():
            try:
                done = await self._pass(request.tenant_id)
            except LostLeadership:
                raise
            except Exception:
                # Unanswered, the replica that asked says 503 and its caller retries.
                log.exception("cleanup of tenant %s failed", request.tenant_id)
                continue
            await requests.answer(request, [asdict(t) for t in done])

    async def _pass(self, tenant_id: str | None) -> list[Transition]:
        hot = self.state.hot
        if not await hot.is_restored():
            # A shared hot store lost its contents (Redis restarted empty): workers that do
            # not register again would never be reaped, so replay the database first.
            restored = await rebuild_hot_store(self.state)
            log.warning("hot store was empty; restored %d live workers from the database", restored)
        now = self.state.clock()
        swept = await hot.sweep(
            now=now, suspect_after=self.state.settings.suspect_after, tenant_id=tenant_id
        )
        transitions: list[Transition] = []
        if swept.suspect:
            await self._mark_suspect(swept.suspect, now)
            transitions += [
                Transition(w.tenant_id, w.worker_id, "online", "suspect") for w in swept.suspect
            ]
        # Workers swept now plus any whose release failed on an earlier pass.
        pending = {
            w.key: w
            for w in await hot.offline_with_leases()
            if tenant_id is None or w.tenant_id == tenant_id
        }
        for worker in swept.expired:
            pending.setdefault(worker.key, worker)
        for worker in pending.values():
            released = await self._take_offline(worker, now)
            if released is not None:
                origin = swept.expired_from.get(worker.key, WorkerStatus.offline).value
                transitions.append(
                    Transition(worker.tenant_id, worker.worker_id, origin, "offline", released)
                )
        await self._drain_step(now, tenant_id)
        await self._expire_commands(now, tenant_id)
        if tenant_id is None:
            self._passes += 1
            if self._passes % self.state.settings.anti_entropy_every == 0:
                await full_pass(self.state)
        return transitions

    async def _mark_suspect(self, workers: list[LiveWorker], now: float) -> None:
        async with self.state.sessions() as session:
            for worker in workers:
                if await workers_repo.set_status(session, worker.pk, "suspect"):
                    events_repo.record(
                        session,
                        worker.tenant_id,
                        worker.pk,
                        "suspect",
                        silent_for=round(now - worker.last_seen, 3),
                    )
            await self._commit(session)
        for worker in workers:
            await self.state.events.publish(
                worker.tenant_id,
                "status_changed",
                {"worker_id": worker.worker_id, "from": "online", "to": "suspect"},
            )

    async def _take_offline(self, worker: LiveWorker, now: float) -> list[int] | None:
        hot = self.state.hot
        now_dt = to_datetime(now)
        overdue = worker.stop_deadline is not None and now >= worker.stop_deadline
        lost = worker.presence_deadline is not None and now >= worker.presence_deadline
        reason = (
            "shutdown deadline passed" if overdue else "presence lost" if lost else "lease expired"
        )
        try:
            async with self.state.sessions() as session:
                row = await leases_repo.lock_worker(session, worker.pk)
                if row is None or row.session_hash != worker.session_hash:
                    # Re-registered meanwhile: the registration settled its old leases.
                    return []
                # A worker forced out before its lease ran out (a missed shutdown deadline)
                # may stream until its deadline: its cameras wait for that. One that lost its
                # presence channel has fenced itself by the end of its grace.
                hold = to_datetime(max(now, worker.fenced_by()))
                released = await leases_repo.release_all(
                    session, worker.pk, now_dt, hold_until=hold
                )
                for held in released:
                    events_repo.record(
                        session,
                        worker.tenant_id,
                        worker.pk,
                        "camera_released",
                        camera_id=held.camera_id,
                        epoch=held.epoch,
                        reason=reason,
                    )
                await workers_repo.set_status(session, worker.pk, WorkerStatus.offline.value)
                events_repo.record(
                    session,
                    worker.tenant_id,
                    worker.pk,
                    "offline",
                    reason=reason,
                    silent_for=round(now - worker.last_seen, 3),
                )
                await self._commit(session)
        except LostLeadership:
            raise
        except Exception as exc:
            if (why := outage(exc)) is not None:
                log.warning("reaper could not release %s (%s); retrying", worker.key, why)
            else:
                log.exception("reaper could not release %s; retrying next pass", worker.key)
            return None
        self.state.metrics.leases_expired.inc(len(released))
        # The database is the owner now: the hot record is dropped, and a later heartbeat
        # from this worker is told to register again.
        await hot.remove_worker(worker.tenant_id, worker.worker_id, only_if_offline=True)
        events = self.state.events
        for held in released:
            await events.publish(
                worker.tenant_id,
                "camera_released",
                camera_released(worker.worker_id, held.camera_id, held.epoch, reason),
            )
        await events.publish(
            worker.tenant_id,
            "status_changed",
            {"worker_id": worker.worker_id, "to": "offline", "reason": reason},
        )
        return sorted({h.camera_id for h in released} | set(worker.leases))

    async def _drain_step(self, now: float, tenant_id: str | None = None) -> None:
        """Release one camera of each draining worker per heartbeat interval, so other
        workers take them over one by one instead of all at once."""
        step = self.state.settings.heartbeat_interval
        draining = await self.state.hot.draining_with_leases()
        if tenant_id is None:
            keys = {w.key for w in draining}
            for key in [k for k in self._last_drain_step if k not in keys]:
                del self._last_drain_step[key]
        else:
            draining = [w for w in draining if w.tenant_id == tenant_id]
        for worker in draining:
            if now - self._last_drain_step.get(worker.key, 0.0) < step:
                continue
            camera_id = min(worker.leases)
            epoch = worker.leases[camera_id]
            async with self.state.sessions() as session:
                done = await revoke(self.state, session, worker, camera_id, epoch, "draining")
                await self._commit(session)
            self._last_drain_step[worker.key] = now
            if done:
                await self.state.events.publish(
                    worker.tenant_id,
                    "camera_released",
                    camera_released(worker.worker_id, camera_id, epoch, "draining"),
                )

    async def _expire_commands(self, now: float, tenant_id: str | None) -> None:
        async with self.state.sessions() as session:
            expired = await commands_repo.expire_due(session, to_datetime(now), tenant_id)
            await self._commit(session)
        for command, worker_id in expired:
            await self.state.hot.remove_command(command.tenant_id, worker_id, command.id)
            await self.state.events.publish(
                command.tenant_id,
                "command_expired",
                {"worker_id": worker_id, "command_id": command.id, "type": command.type},
            )


async def cleanup_now(state: AppState, tenant_id: str) -> list[Transition]:
    """The reaper's pass over one tenant, run by the leader: here when this replica leads
    (or none does and none would run it), else by the leader at the other replica's request."""
    reaper = state.reaper
    election = state.election
    assert reaper is not None and election is not None, "set in the lifespan"
    if await election.confirm():
        return await reaper.run_once(tenant_id)
    if not state.settings.run_background and await election.vacant():
        # This replica takes no part in the election and no replica leads: nobody else
        # would run it.
        return await reaper.run_once(tenant_id)
    wait = max(5.0, 10 * state.settings.reaper_period)
    reply = (
        None if state.leader_requests is None else await state.leader_requests.ask(tenant_id, wait)
    )
    if reply is None:
        raise ServiceUnavailable(
            f"the leader did not run the cleanup within {wait:.0f}s; retry shortly",
            headers={"Retry-After": "1"},
        )
    return [Transition(**t) for t in reply]

"""Camera assignment: exclusive leases with a fencing epoch, one transaction each.

Every change of a worker's lease set locks the worker's row first, so the anti-entropy pass
(which also locks it) never interleaves with one. A lease the database grants reaches the
hot store after the commit; a lease taken from a worker that may still stream it is dropped
from the hot store before the commit (see ``revoke``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.clock import to_datetime
from facefleet.api.errors import StaleEpoch
from facefleet.api.events.broker import camera_released
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.storage.db import events_repo, leases_repo, tenants_repo
from facefleet.api.storage.db.models import Camera, CameraLease
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.api.unit_of_work import UnitOfWork, transaction, written
from facefleet.api.workers import schemas
from facefleet.api.workers.identity import not_registered
from facefleet.protocol.enums import LIVE_STATUSES, WorkerStatus


def assignment_of(
    camera: Camera, epoch: int, lease_ttl: float, tenant_threshold: float
) -> schemas.Assignment:
    return schemas.Assignment(
        camera_id=camera.id,
        name=camera.name,
        source_url=camera.source_url,
        target_fps=camera.target_fps,
        epoch=epoch,
        lease_ttl=lease_ttl,
        match_threshold=(
            camera.match_threshold if camera.match_threshold is not None else tenant_threshold
        ),
    )


NO_FREE_CAMERA = "no free camera matches this worker"
LIVE_ROWS = frozenset(status.value for status in LIVE_STATUSES)
# The longest a camera request may wait for a camera.
MAX_WAIT = 60.0


def failure_backoff(failures: int, base: float, cap: float) -> float:
    """Seconds a failing camera waits before it is offered again: doubling, capped."""
    return float(min(cap, base * 2 ** max(0, failures - 1)))


class AssignmentService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.hot = state.hot
        self.settings = state.settings

    async def _threshold(self, uow: UnitOfWork, principal: Principal) -> float:
        return (await tenants_repo.tenant(uow.session, principal.tenant_id)).match_threshold

    async def _held(
        self, session: AsyncSession, principal: Principal, live: LiveWorker, threshold: float
    ) -> list[schemas.Assignment]:
        rows = await leases_repo.held_with_cameras(session, live.pk)
        ttl = self.settings.lease_ttl
        return [assignment_of(camera, lease.epoch, ttl, threshold) for camera, lease in rows]

    async def request_camera(
        self, principal: Principal, live: LiveWorker, wait: float = 0.0
    ) -> schemas.CameraRequestResponse:
        """A camera if one fits now; else, with ``wait``, the first that becomes free within
        that many seconds (a long poll: no transaction is open while it waits)."""
        async with transaction(self.state.sessions, self.state.repairs) as uow:
            answer = await self._request_once(uow, principal, live)
        if answer.assignment is not None or wait <= 0 or answer.reason != NO_FREE_CAMERA:
            return answer
        loop = asyncio.get_running_loop()
        ends = loop.time() + wait
        waiters = self.state.waiters
        async with waiters.queued(principal.tenant_id, live.worker_id) as waiter:
            while (remaining := ends - loop.time()) > 0:
                woken = await waiters.wait(waiter, min(remaining, self.settings.retry_after))
                current = await self.hot.get_worker(principal.tenant_id, live.worker_id)
                if current is None or current.session_hash != live.session_hash:
                    raise not_registered(live.worker_id)
                async with transaction(self.state.sessions, self.state.repairs) as uow:
                    answer = await self._request_once(uow, principal, current)
                if answer.assignment is not None:
                    waiters.done(waiter)
                    return answer
                if answer.reason != NO_FREE_CAMERA:
                    return answer  # leaving the queue passes its turn on
                if woken:
                    waiters.pass_on(principal.tenant_id, waiter)
        return answer

    async def _request_once(
        self, uow: UnitOfWork, principal: Principal, live: LiveWorker
    ) -> schemas.CameraRequestResponse:
        started = time.perf_counter()
        worker_id = live.worker_id

        def nothing(reason: str, held: list[schemas.Assignment]) -> schemas.CameraRequestResponse:
            return schemas.CameraRequestResponse(
                assignment=None,
                retry_after=self.settings.retry_after,
                reason=reason,
                held=held,
                generation=live.generation,
            )

        session = uow.session
        row = await leases_repo.lock_worker(session, live.pk)
        # The locked row judges, not the hot record: the reaper takes a worker offline and
        # frees its cameras in one transaction before its hot record goes, and a request
        # parked meanwhile (the process may be dead) must not take them back.
        if row is None or row.session_hash != live.session_hash or row.status not in LIVE_ROWS:
            raise not_registered(worker_id)
        threshold = await self._threshold(uow, principal)
        held = await self._held(session, principal, live, threshold)
        if live.status in (WorkerStatus.draining, WorkerStatus.stopping):
            return nothing(f"worker is {live.status.value}: it takes no new cameras", held)
        if len(held) >= live.capacity:
            return nothing(f"worker is at capacity ({live.capacity} camera(s))", held)
        now = self.state.clock()
        claimed = await leases_repo.claim_free_camera(
            session,
            tenant_id=principal.tenant_id,
            worker_pk=live.pk,
            worker_labels=live.labels,
            now=to_datetime(now),
        )
        if claimed is None:
            return nothing(NO_FREE_CAMERA, held)
        camera, epoch = claimed
        events_repo.record(
            session,
            principal.tenant_id,
            live.pk,
            "camera_assigned",
            camera_id=camera.id,
            epoch=epoch,
        )
        event = {"worker_id": worker_id, "camera_id": camera.id, "epoch": epoch}
        tenant_id = principal.tenant_id

        async def publish() -> None:
            # Counted once committed, so the latency includes the commit.
            self.state.metrics.assignments.inc()
            self.state.metrics.assignment_latency.observe(time.perf_counter() - started)
            generation = await self.hot.add_lease(
                tenant_id, worker_id, camera.id, epoch, now=self.state.clock()
            )
            written(generation, (tenant_id, worker_id))
            await self.state.events.publish(tenant_id, "camera_assigned", event)

        uow.after_commit(publish, repairs=(tenant_id, worker_id))
        assignment = assignment_of(camera, epoch, self.settings.lease_ttl, threshold)
        return schemas.CameraRequestResponse(
            assignment=assignment, held=[*held, assignment], generation=live.generation
        )

    async def current(
        self, uow: UnitOfWork, principal: Principal, live: LiveWorker
    ) -> schemas.CurrentAssignments:
        threshold = await self._threshold(uow, principal)
        return schemas.CurrentAssignments(
            worker_id=live.worker_id,
            assignments=await self._held(uow.session, principal, live, threshold),
            generation=live.generation,
        )

    async def release(
        self,
        uow: UnitOfWork,
        principal: Principal,
        live: LiveWorker,
        req: schemas.ReleaseRequest,
    ) -> schemas.ReleaseResponse:
        worker_id = live.worker_id
        session = uow.session
        now = self.state.clock()
        if await leases_repo.lock_worker(session, live.pk) is None:
            raise not_registered(worker_id)
        lease = await leases_repo.lease_in_tenant(session, principal.tenant_id, req.camera_id)
        if lease is None or lease.worker_pk != live.pk or lease.epoch != req.epoch:
            raise StaleEpoch(
                f"worker {worker_id!r} does not hold camera {req.camera_id} at epoch {req.epoch}; "
                "stop processing it",
                camera_id=req.camera_id,
            )
        reason = "released by worker"
        if req.error is not None:
            reason = f"stream failed: {req.error}"
            self._mark_failing(lease, req.error, now)
        await leases_repo.release(session, req.camera_id, live.pk, req.epoch, to_datetime(now))
        events_repo.record(
            session,
            principal.tenant_id,
            live.pk,
            "camera_released",
            camera_id=req.camera_id,
            epoch=req.epoch,
            reason=reason,
        )
        event = camera_released(worker_id, req.camera_id, req.epoch, reason)
        tenant_id = principal.tenant_id

        async def publish() -> None:
            generation = await self.hot.drop_lease(
                tenant_id, worker_id, req.camera_id, now=self.state.clock()
            )
            written(generation, (tenant_id, worker_id))
            await self.state.events.publish(tenant_id, "camera_released", event)

        uow.after_commit(publish, repairs=(tenant_id, worker_id))
        return schemas.ReleaseResponse(
            released=True, camera_id=req.camera_id, epoch=req.epoch, generation=live.generation
        )

    def _mark_failing(self, lease: CameraLease, error: str, now: float) -> None:
        """A camera whose stream failed waits, longer each time, before anyone gets it."""
        lease.failures += 1
        lease.last_error = error
        wait = failure_backoff(
            lease.failures, self.settings.failing_backoff, self.settings.failing_backoff_max
        )
        lease.backoff_until = to_datetime(now) + timedelta(seconds=wait)

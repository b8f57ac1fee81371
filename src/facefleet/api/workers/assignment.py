"""Camera assignment: exclusive leases with a fencing epoch, one transaction each."""

from __future__ import annotations

import time

from facefleet.api.clock import to_datetime
from facefleet.api.errors import StaleEpoch
from facefleet.api.events.broker import camera_released
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.storage.db import events_repo, leases_repo, tenants_repo
from facefleet.api.storage.db.models import Camera
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.api.unit_of_work import UnitOfWork
from facefleet.api.workers import schemas
from facefleet.api.workers.identity import not_registered
from facefleet.protocol.enums import WorkerStatus


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


class AssignmentService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.hot = state.hot
        self.settings = state.settings

    async def _threshold(self, uow: UnitOfWork, principal: Principal) -> float:
        return (await tenants_repo.tenant(uow.session, principal.tenant_id)).match_threshold

    def _nothing(self, reason: str) -> schemas.CameraRequestResponse:
        return schemas.CameraRequestResponse(
            assignment=None, retry_after=self.settings.retry_after, reason=reason
        )

    async def request_camera(
        self, uow: UnitOfWork, principal: Principal, live: LiveWorker
    ) -> schemas.CameraRequestResponse:
        started = time.perf_counter()
        worker_id = live.worker_id
        if live.status in (WorkerStatus.draining, WorkerStatus.stopping):
            return self._nothing(f"worker is {live.status.value}: it takes no new cameras")
        session = uow.session
        row = await leases_repo.lock_worker(session, live.pk)
        if row is None:
            raise not_registered(worker_id)
        held = await leases_repo.held_by(session, live.pk)
        if len(held) >= live.capacity:
            return self._nothing(f"worker is at capacity ({live.capacity} camera(s))")
        now = self.state.clock()
        claimed = await leases_repo.claim_free_camera(
            session,
            tenant_id=principal.tenant_id,
            worker_pk=live.pk,
            worker_labels=live.labels,
            now=to_datetime(now),
        )
        if claimed is None:
            return self._nothing("no free camera matches this worker")
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

        async def publish() -> None:
            # Counted once committed, so the latency includes the commit.
            self.state.metrics.assignments.inc()
            self.state.metrics.assignment_latency.observe(time.perf_counter() - started)
            await self.hot.add_lease(principal.tenant_id, worker_id, camera.id, epoch)
            await self.state.events.publish(principal.tenant_id, "camera_assigned", event)

        uow.after_commit(publish)
        return schemas.CameraRequestResponse(
            assignment=assignment_of(
                camera, epoch, self.settings.lease_ttl, await self._threshold(uow, principal)
            )
        )

    async def current(
        self, uow: UnitOfWork, principal: Principal, live: LiveWorker
    ) -> schemas.CurrentAssignments:
        worker_id = live.worker_id
        rows = await leases_repo.held_with_cameras(uow.session, live.pk)
        threshold = await self._threshold(uow, principal)
        return schemas.CurrentAssignments(
            worker_id=worker_id,
            assignments=[
                assignment_of(camera, lease.epoch, self.settings.lease_ttl, threshold)
                for camera, lease in rows
            ],
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
        now = to_datetime(self.state.clock())
        if not await leases_repo.release(session, req.camera_id, live.pk, req.epoch, now):
            lease = await leases_repo.lease_of(session, req.camera_id)
            current = "none" if lease is None else str(lease.epoch)
            raise StaleEpoch(
                f"worker {worker_id!r} does not hold camera {req.camera_id} at epoch {req.epoch} "
                f"(current epoch {current}); stop processing it",
                camera_id=req.camera_id,
            )
        events_repo.record(
            session,
            principal.tenant_id,
            live.pk,
            "camera_released",
            camera_id=req.camera_id,
            epoch=req.epoch,
            reason="released by worker",
        )

        event = camera_released(worker_id, req.camera_id, req.epoch, "released by worker")

        async def publish() -> None:
            await self.hot.drop_lease(principal.tenant_id, worker_id, req.camera_id)
            await self.state.events.publish(principal.tenant_id, "camera_released", event)

        uow.after_commit(publish)
        return schemas.ReleaseResponse(released=True, camera_id=req.camera_id, epoch=req.epoch)

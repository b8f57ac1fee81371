"""Operator control of a worker: the shutdown signal flow, drain and undrain."""

from __future__ import annotations

from facefleet.api.clock import to_datetime
from facefleet.api.errors import Conflict, Forbidden
from facefleet.api.events.broker import camera_released
from facefleet.api.security import Principal, Role
from facefleet.api.state import AppState
from facefleet.api.storage.db import events_repo, leases_repo, workers_repo
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.api.unit_of_work import UnitOfWork
from facefleet.api.workers import schemas
from facefleet.api.workers.identity import not_registered
from facefleet.protocol.enums import WorkerStatus

GRACEFUL_DEADLINE = 30.0


class ControlService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.hot = state.hot
        self.settings = state.settings

    async def shutdown_signal(
        self,
        uow: UnitOfWork,
        principal: Principal,
        live: LiveWorker,
        req: schemas.ShutdownSignal,
    ) -> schemas.ShutdownResponse:
        worker_id = live.worker_id
        tenant_id = principal.tenant_id
        now = self.state.clock()
        session = uow.session
        row = await leases_repo.lock_worker(session, live.pk)
        if row is None:
            raise not_registered(worker_id)
        from_worker = principal.role == Role.worker
        source = "worker" if from_worker else "operator"
        released: list[leases_repo.HeldLease] = []
        deadline: float | None = None
        if from_worker:
            # The worker is leaving now: its cameras go back at once, not after the TTL.
            released = await leases_repo.release_all(session, live.pk, to_datetime(now))
            for held in released:
                events_repo.record(
                    session,
                    tenant_id,
                    live.pk,
                    "camera_released",
                    camera_id=held.camera_id,
                    epoch=held.epoch,
                    reason="worker shutting down",
                )
        else:
            default = GRACEFUL_DEADLINE if req.mode == "graceful" else self.settings.lease_ttl
            deadline = now + (req.deadline_seconds or default)
        row.status = WorkerStatus.stopping.value
        row.desired_state = "stop"
        events_repo.record(
            session,
            tenant_id,
            live.pk,
            "shutdown_signalled",
            source=source,
            mode=req.mode,
            reason=req.reason,
            deadline=deadline,
        )
        hot, events = self.hot, self.state.events

        async def publish() -> None:
            for held in released:
                await hot.drop_lease(tenant_id, worker_id, held.camera_id, now=self.state.clock())
            await hot.set_status(
                tenant_id,
                worker_id,
                WorkerStatus.stopping,
                "stop",
                stop_deadline=deadline,
                stop_mode=req.mode,
            )
            for held in released:
                await events.publish(
                    tenant_id,
                    "camera_released",
                    camera_released(worker_id, held.camera_id, held.epoch, "worker shutting down"),
                )
            await events.publish(
                tenant_id,
                "shutdown_signalled",
                {"worker_id": worker_id, "source": source, "mode": req.mode, "deadline": deadline},
            )

        uow.after_commit(publish, repairs=(tenant_id, worker_id))
        return schemas.ShutdownResponse(
            worker_id=worker_id,
            source=source,
            mode=req.mode,
            status=WorkerStatus.stopping,
            desired_state="stop",
            released_cameras=[h.camera_id for h in released],
            deadline=None if deadline is None else to_datetime(deadline),
        )

    async def set_draining(
        self, uow: UnitOfWork, principal: Principal, live: LiveWorker, draining: bool
    ) -> schemas.ControlResponse:
        if not principal.is_admin:
            raise Forbidden("draining a worker needs an admin key")
        worker_id = live.worker_id
        if live.status == WorkerStatus.stopping:
            raise Conflict(f"worker {worker_id!r} is stopping; it cannot be drained or undrained")
        status = WorkerStatus.draining if draining else WorkerStatus.online
        desired = "drain" if draining else "run"
        kind = "draining" if draining else "undrained"
        tenant_id = principal.tenant_id
        await workers_repo.set_status(uow.session, live.pk, status.value)
        row = await leases_repo.lock_worker(uow.session, live.pk)
        if row is not None:
            row.desired_state = desired
        events_repo.record(uow.session, tenant_id, live.pk, kind)
        hot, events = self.hot, self.state.events
        previous = live.status.value

        async def publish() -> None:
            await hot.set_status(tenant_id, worker_id, status, desired)
            await events.publish(
                tenant_id,
                "status_changed",
                {"worker_id": worker_id, "from": previous, "to": status.value},
            )

        uow.after_commit(publish, repairs=(tenant_id, worker_id))
        return schemas.ControlResponse(worker_id=worker_id, status=status, desired_state=desired)

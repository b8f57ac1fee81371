"""WorkerService: every worker operation, on the hybrid storage.

Ownership changes are written to the database and, once committed, to the hot store
(write-through). Heartbeats touch only the hot store; the flusher persists liveness later.
"""

from __future__ import annotations

from facefleet.api.clock import to_datetime
from facefleet.api.errors import Forbidden, WorkerIdInUse
from facefleet.api.events.broker import camera_released
from facefleet.api.security import Principal, Role, hash_secret, new_session_token
from facefleet.api.state import AppState
from facefleet.api.storage.db import commands_repo, events_repo, leases_repo, workers_repo
from facefleet.api.storage.db.commands_repo import delivery
from facefleet.api.storage.hot.base import LiveWorker, SessionMismatch, next_generation
from facefleet.api.storage.pending_audit import AuditEntry
from facefleet.api.unit_of_work import UnitOfWork
from facefleet.api.workers import schemas
from facefleet.api.workers.identity import (
    check_session,
    holds,
    lease_infos,
    not_registered,
    refuse_takeover,
)
from facefleet.protocol.enums import LIVE_STATUSES, WorkerStatus


class WorkerService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.hot = state.hot
        self.settings = state.settings

    # -- lifecycle ----------------------------------------------------------------------

    async def register(
        self,
        uow: UnitOfWork,
        principal: Principal,
        req: schemas.RegisterRequest,
        session_token: str | None = None,
    ) -> schemas.RegisterResponse:
        """``session_token``: the caller's current session, if it has one; a live session
        is replaced only by its holder, or once it is stale."""
        tenant_id = principal.tenant_id
        now = self.state.clock()
        suspect_after = self.settings.suspect_after
        previous = await self.hot.get_worker(tenant_id, req.worker_id)
        if previous is not None:
            refuse_takeover(previous, session_token, now, suspect_after)
        session = uow.session
        row, first = await workers_repo.lock_or_create(session, tenant_id, req.worker_id)
        if (
            not first
            and not holds(row.session_hash, session_token)
            and row.status in LIVE_STATUSES
            and now - row.registered_at.timestamp() < suspect_after
        ):
            # A registration that committed while this one waited for the row lock.
            raise WorkerIdInUse(
                f"worker_id {req.worker_id!r} was just registered by another process on host "
                f"{row.hostname or 'unknown'!r}",
                retry_after=suspect_after,
            )
        token = new_session_token()
        now_dt = to_datetime(now)
        fields = {
            "hostname": req.hostname,
            "instance_id": req.instance_id,
            "session_hash": hash_secret(token),
            "version": req.version,
            "labels": sorted(set(req.labels)),
            "capacity": req.capacity,
            "status": WorkerStatus.online.value,
            "desired_state": "run",
            "registered_at": now_dt,
            "last_seen_at": now_dt,
        }
        for name, value in fields.items():
            setattr(row, name, value)
        # Leases of a record the reaper already declared offline are no longer valid; any
        # other lease still in the database survives a re-registration (restart keeps it).
        if previous is not None and not previous.is_live:
            for stale in await leases_repo.release_all(session, row.id, now_dt):
                events_repo.record(
                    session,
                    tenant_id,
                    row.id,
                    "camera_released",
                    camera_id=stale.camera_id,
                    epoch=stale.epoch,
                    reason="expired before re-register",
                )
        kept = await leases_repo.held_by(session, row.id)
        events_repo.record(
            session,
            tenant_id,
            row.id,
            "registered" if first else "re-registered",
            hostname=req.hostname,
            kept_cameras=[h.camera_id for h in kept],
        )
        commands = await commands_repo.deliverable(session, row.id, now_dt)
        live = LiveWorker(
            pk=row.id,
            tenant_id=tenant_id,
            worker_id=req.worker_id,
            session_hash=hash_secret(token),
            hostname=req.hostname,
            instance_id=req.instance_id,
            capacity=req.capacity,
            labels=list(row.labels),
            status=WorkerStatus.online,
            desired_state="run",
            last_seen=now,
            deadline=now + self.settings.lease_ttl,
            leases={h.camera_id: h.epoch for h in kept},
            commands={c.id: delivery(c) for c in commands},
            # A new session: newer than anything the previous one was told.
            generation=next_generation(previous.generation if previous else 0, now),
        )
        event = {
            "worker_id": req.worker_id,
            "hostname": req.hostname,
            "capacity": req.capacity,
            "labels": live.labels,
            "status": "online",
            "cameras": sorted(live.leases),
        }

        async def publish() -> None:
            await self.hot.put_worker(live)
            await self.state.events.publish(tenant_id, "registered", event)

        uow.after_commit(publish, repairs=(tenant_id, req.worker_id))
        return schemas.RegisterResponse(
            worker_id=req.worker_id,
            session_token=token,
            status=WorkerStatus.online,
            desired_state="run",
            heartbeat_interval=self.settings.heartbeat_interval,
            heartbeat_jitter=self.settings.heartbeat_jitter,
            lease_ttl=self.settings.lease_ttl,
            leases=lease_infos(live, now),
            generation=live.generation,
            presence_beat=self.settings.presence_beat,
            presence_grace=self.settings.presence_grace,
        )

    async def heartbeat(
        self,
        principal: Principal,
        worker_id: str,
        session_token: str | None,
        req: schemas.HeartbeatRequest,
    ) -> schemas.HeartbeatResponse:
        now = self.state.clock()
        expected = None
        if principal.role == Role.worker:
            if not session_token:
                if await self.hot.get_worker(principal.tenant_id, worker_id) is None:
                    raise not_registered(worker_id)
                raise Forbidden("a worker key must send its X-Worker-Session token")
            expected = hash_secret(session_token)
        try:
            outcome = await self.hot.heartbeat(
                principal.tenant_id,
                worker_id,
                now=now,
                ttl=self.settings.lease_ttl,
                metrics=req.metrics,
                streams=(
                    None
                    if req.streams is None
                    else [r.model_dump(mode="json") for r in req.streams]
                ),
                session_hash=expected,
            )
        except SessionMismatch as exc:
            raise Forbidden(
                f"this worker key is not acting as {worker_id!r}: its session token does not "
                "match the registered one"
            ) from exc
        if outcome is None:
            raise not_registered(worker_id)
        self.state.metrics.heartbeats.inc()
        worker = outcome.worker
        if outcome.recovered:
            self.state.audit.add(AuditEntry(worker.tenant_id, worker.pk, "recovered"))
            await self.state.events.publish(
                worker.tenant_id,
                "status_changed",
                {"worker_id": worker_id, "from": "suspect", "to": "online"},
            )
        return schemas.HeartbeatResponse(
            status=worker.status,
            desired_state=worker.desired_state,
            leases=lease_infos(worker, now),
            commands=[worker.commands[cid] for cid in sorted(worker.commands)],
            stop_mode=worker.stop_mode,
            heartbeat_interval=self.settings.heartbeat_interval,
            lease_ttl=self.settings.lease_ttl,
            server_time=now,
            gallery_version=self.state.gallery_versions.get(worker.tenant_id),
            generation=worker.generation,
        )

    async def deregister(
        self, uow: UnitOfWork, principal: Principal, worker_id: str, session_token: str | None
    ) -> schemas.DeregisterResponse:
        tenant_id = principal.tenant_id
        live = await self.hot.get_worker(tenant_id, worker_id)
        if live is not None:
            check_session(principal, live, session_token)
        elif principal.role == Role.worker:
            raise not_registered(worker_id)
        session = uow.session
        row = await workers_repo.get_for_update(session, tenant_id, worker_id)
        if row is None:
            raise not_registered(worker_id)
        now = self.state.clock()
        now_dt = to_datetime(now)
        # An operator deregistering a live worker takes its cameras away: they wait for its
        # deadline. A worker deregistering itself has stopped its streams already.
        hold = (
            to_datetime(max(now, live.deadline))
            if live is not None and live.is_live and principal.role != Role.worker
            else None
        )
        released = await leases_repo.release_all(session, row.id, now_dt, hold_until=hold)
        for held in released:
            events_repo.record(
                session,
                tenant_id,
                row.id,
                "camera_released",
                camera_id=held.camera_id,
                epoch=held.epoch,
                reason="deregistered",
            )
        row.status = WorkerStatus.deregistered.value
        events_repo.record(session, tenant_id, row.id, "deregistered")
        if hold is not None:
            # Taken from a live worker: it must stop hearing that its leases are valid before
            # the release commits (its next heartbeat is told to register again).
            await self.hot.remove_worker(tenant_id, worker_id)

        async def forget() -> None:
            await self.hot.remove_worker(tenant_id, worker_id)
            for held in released:
                await self.state.events.publish(
                    tenant_id,
                    "camera_released",
                    camera_released(worker_id, held.camera_id, held.epoch, "deregistered"),
                )
            await self.state.events.publish(
                tenant_id,
                "deregistered",
                {"worker_id": worker_id, "released_cameras": [h.camera_id for h in released]},
            )

        uow.after_commit(forget, repairs=(tenant_id, worker_id))
        return schemas.DeregisterResponse(
            worker_id=worker_id, released_cameras=[h.camera_id for h in released]
        )

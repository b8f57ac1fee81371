"""Camera CRUD per tenant. Disabling or deleting a leased camera revokes its lease."""

from __future__ import annotations

from datetime import UTC, datetime

from facefleet.api.cameras import schemas
from facefleet.api.cameras.states import camera_state
from facefleet.api.clock import to_datetime
from facefleet.api.errors import CameraNotFound, Conflict
from facefleet.api.events.broker import camera_released
from facefleet.api.revocation import revoke
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.storage.db import cameras_repo, events_repo, leases_repo
from facefleet.api.storage.db.models import Camera, Worker
from facefleet.api.unit_of_work import UnitOfWork
from facefleet.protocol.source_urls import mask_source_url


class CameraService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def _out(self, uow: UnitOfWork, cameras: list[Camera]) -> list[schemas.CameraOut]:
        ids = [c.id for c in cameras]
        labels = await cameras_repo.labels_for(uow.session, ids)
        leases = await cameras_repo.leases_for(uow.session, ids)
        tenants = {c.tenant_id for c in cameras}
        live = {w.worker_id: w for t in tenants for w in await self.state.hot.list_workers(t)}
        now = self.state.clock()
        out = []
        for c in cameras:
            lease, holder = leases[c.id]
            processing = camera_state(
                c.enabled, lease, holder, live.get(holder) if holder else None, now
            )
            out.append(
                schemas.CameraOut(
                    id=c.id,
                    name=c.name,
                    source_url=mask_source_url(c.source_url),
                    enabled=c.enabled,
                    target_fps=c.target_fps,
                    required_labels=labels[c.id],
                    priority=c.priority,
                    match_threshold=c.match_threshold,
                    created_at=c.created_at,
                    updated_at=c.updated_at,
                    lease=schemas.CameraLeaseOut(
                        worker_id=holder, epoch=lease.epoch, assigned_at=lease.assigned_at
                    ),
                    state=processing.state,
                    worker_id=processing.worker_id,
                    fps=processing.fps,
                    frames_processed=processing.frames_processed,
                    last_error=processing.last_error or lease.last_error,
                    failures=lease.failures,
                )
            )
        return out

    async def _get(self, uow: UnitOfWork, principal: Principal, camera_id: int) -> Camera:
        camera = await cameras_repo.get(uow.session, principal.tenant_id, camera_id)
        if camera is None:
            raise CameraNotFound(f"camera {camera_id} does not exist in this tenant")
        return camera

    async def create(
        self, uow: UnitOfWork, principal: Principal, req: schemas.CameraCreate
    ) -> schemas.CameraOut:
        if await cameras_repo.name_taken(uow.session, principal.tenant_id, req.name):
            raise Conflict(f"a camera named {req.name!r} already exists")
        camera = Camera(
            tenant_id=principal.tenant_id,
            name=req.name,
            source_url=req.source_url,
            enabled=req.enabled,
            target_fps=req.target_fps,
            priority=req.priority,
            match_threshold=req.match_threshold,
        )
        await cameras_repo.add(uow.session, camera, req.required_labels)
        out = (await self._out(uow, [camera]))[0]
        self._announce(uow, principal, "camera_added", out)
        return out

    def _announce(
        self, uow: UnitOfWork, principal: Principal, kind: str, camera: schemas.CameraOut
    ) -> None:
        """Operators see the change; workers waiting for a camera look again."""
        event = camera.model_dump(mode="json", include={"id", "name", "enabled", "state"})

        async def publish() -> None:
            await self.state.events.publish(principal.tenant_id, kind, event)

        uow.after_commit(publish)

    async def get(self, uow: UnitOfWork, principal: Principal, camera_id: int) -> schemas.CameraOut:
        return (await self._out(uow, [await self._get(uow, principal, camera_id)]))[0]

    async def page(
        self, uow: UnitOfWork, principal: Principal, offset: int, limit: int
    ) -> schemas.CameraPage:
        cameras, total = await cameras_repo.page(uow.session, principal.tenant_id, offset, limit)
        return schemas.CameraPage(
            items=await self._out(uow, cameras), total=total, offset=offset, limit=limit
        )

    async def update(
        self, uow: UnitOfWork, principal: Principal, camera_id: int, req: schemas.CameraUpdate
    ) -> schemas.CameraOut:
        camera = await self._get(uow, principal, camera_id)
        changes = req.model_dump(exclude_unset=True)
        if "name" in changes and await cameras_repo.name_taken(
            uow.session, principal.tenant_id, changes["name"], except_id=camera.id
        ):
            raise Conflict(f"a camera named {changes['name']!r} already exists")
        labels = changes.pop("required_labels", None)
        for field, value in changes.items():
            # match_threshold may be set back to null (the tenant's default); others may not.
            if value is not None or field == "match_threshold":
                setattr(camera, field, value)
        camera.updated_at = datetime.now(UTC)
        await cameras_repo.sync_lease(uow.session, camera)
        if labels is not None:
            await cameras_repo.set_labels(uow.session, camera.id, labels)
        if not camera.enabled or "source_url" in changes:
            await self._revoke(uow, principal, camera.id, "camera disabled or changed")
        if "source_url" in changes:
            # A new source deserves a fresh try: no failures carried over, no backoff.
            await cameras_repo.clear_failures(uow.session, [camera.id])
        await uow.session.flush()
        out = (await self._out(uow, [camera]))[0]
        self._announce(uow, principal, "camera_updated", out)
        return out

    async def delete(self, uow: UnitOfWork, principal: Principal, camera_id: int) -> None:
        camera = await self._get(uow, principal, camera_id)
        await self._revoke(uow, principal, camera.id, "camera deleted")
        await cameras_repo.delete_camera(uow.session, camera)

    async def _revoke(
        self, uow: UnitOfWork, principal: Principal, camera_id: int, reason: str
    ) -> None:
        lease = await leases_repo.lease_of(uow.session, camera_id)
        if lease is None or lease.worker_pk is None:
            return
        holder_pk, epoch = lease.worker_pk, lease.epoch
        holder = await uow.session.get(Worker, holder_pk)
        if holder is None:
            return
        worker_id = holder.worker_id
        live = await self.state.hot.get_worker(principal.tenant_id, worker_id)
        if live is not None and live.pk == holder_pk:
            await revoke(self.state, uow.session, live, camera_id, epoch, reason)
        else:
            # Not live in the hot store: no heartbeat can tell it the lease is valid.
            await leases_repo.release(
                uow.session, camera_id, holder_pk, epoch, to_datetime(self.state.clock())
            )
            events_repo.record(
                uow.session,
                principal.tenant_id,
                holder_pk,
                "camera_released",
                camera_id=camera_id,
                epoch=epoch,
                reason=reason,
            )
        event = camera_released(worker_id, camera_id, epoch, reason)

        async def publish() -> None:
            await self.state.events.publish(principal.tenant_id, "camera_released", event)

        uow.after_commit(publish)

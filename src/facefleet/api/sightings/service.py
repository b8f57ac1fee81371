"""Sightings from workers, accepted only under the camera lease's current epoch."""

from __future__ import annotations

import base64
import binascii

from sqlalchemy import select

from facefleet.api.clock import to_datetime
from facefleet.api.errors import FacefleetError, NotFound, StaleEpoch
from facefleet.api.security import Principal
from facefleet.api.sightings import schemas
from facefleet.api.state import AppState
from facefleet.api.storage.db import sightings_repo, strangers_repo
from facefleet.api.storage.db.models import Camera, CameraLease, Sighting
from facefleet.api.storage.db.sightings_repo import SightingFilter
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.api.unit_of_work import UnitOfWork
from facefleet.face.model import MODEL_NAME


class InvalidSighting(FacefleetError):
    status_code = 422


class SightingNotFound(NotFound):
    pass


def _crop(raw: str | None, track_id: str) -> bytes | None:
    if raw is None:
        return None
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSighting(f"track {track_id}: crop_jpeg_b64 is not base64") from exc
    if not data.startswith(b"\xff\xd8\xff"):
        raise InvalidSighting(f"track {track_id}: the crop is not a JPEG")
    return data


def _embedding(item: schemas.SightingIn) -> bytes | None:
    """The worker's embedding, if it is of the gallery's model (validated by the wire model)."""
    if item.embedding_b64 is None:
        return None
    if item.embedding_model not in (None, MODEL_NAME):
        return None  # not comparable with this gallery: the crop is embedded instead
    return base64.b64decode(item.embedding_b64)


def sighting_out(
    s: Sighting, camera: str | None, person: str | None, worker: str | None
) -> schemas.SightingOut:
    return schemas.SightingOut(
        id=s.id,
        camera_id=s.camera_id,
        camera_name=camera,
        person_id=s.person_id,
        person_name=person,
        known=s.person_id is not None,
        stranger_id=s.stranger_id,
        track_id=s.track_id,
        epoch=s.epoch,
        worker_id=worker,
        first_seen=s.first_seen,
        last_seen=s.last_seen,
        best_distance=s.best_distance,
        frames=s.frames,
        crop_url=f"/v1/sightings/{s.id}/crop" if s.crop else None,
    )


def _relabel(row: Sighting, person: int | None) -> int | None:
    """The worker's (newer) identity for a tracked face; the stranger it leaves, if any."""
    previous_stranger = None
    if person is not None:
        previous_stranger, row.stranger_id = row.stranger_id, None
        row.clustering = "done"
    elif row.stranger_id is None and row.clustering != "pending" and (row.crop or row.embedding):
        # Unknown now (it was known, or it now has a face to cluster by).
        row.clustering = "pending"
    row.person_id = person
    return previous_stranger


class SightingService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def record(
        self,
        uow: UnitOfWork,
        principal: Principal,
        live: LiveWorker,
        batch: schemas.SightingBatch,
    ) -> schemas.SightingBatchResult:
        worker_id = live.worker_id
        session = uow.session
        # The lease row is locked so a reassignment cannot slip in between check and write.
        lease = await session.scalar(
            select(CameraLease)
            .join(Camera, Camera.id == CameraLease.camera_id)
            .where(
                CameraLease.camera_id == batch.camera_id, Camera.tenant_id == principal.tenant_id
            )
            .with_for_update(of=CameraLease)
        )
        if lease is None or lease.worker_pk != live.pk or lease.epoch != batch.epoch:
            # The same answer whoever holds the camera, or whether it exists in this tenant at
            # all: its epoch is a fencing token for its holder alone.
            raise StaleEpoch(
                f"worker {worker_id!r} does not hold camera {batch.camera_id} at epoch "
                f"{batch.epoch}; stop processing it",
                camera_id=batch.camera_id,
            )
        for item in batch.sightings:
            if item.last_seen < item.first_seen:
                raise InvalidSighting(f"track {item.track_id}: last_seen is before first_seen")
        known_people = await sightings_repo.people_ids(
            session,
            principal.tenant_id,
            {s.person_id for s in batch.sightings if s.person_id is not None},
        )
        previous = await sightings_repo.existing(
            session, batch.camera_id, batch.epoch, [s.track_id for s in batch.sightings]
        )
        rows: list[Sighting] = []
        left: set[int | None] = set()
        for item in batch.sightings:
            # A person deleted after the worker loaded its gallery is reported as unknown.
            person = item.person_id if item.person_id in known_people else None
            fields = {
                "first_seen": to_datetime(item.first_seen),
                "last_seen": to_datetime(item.last_seen),
                "best_distance": item.best_distance,
                "frames": item.frames,
            }
            crop = _crop(item.crop_jpeg_b64, item.track_id)
            embedding = _embedding(item)
            row = previous.get(item.track_id)
            if row is None:
                row = Sighting(
                    tenant_id=principal.tenant_id,
                    camera_id=batch.camera_id,
                    worker_pk=live.pk,
                    epoch=batch.epoch,
                    track_id=item.track_id,
                    person_id=person,
                    crop=crop,
                    embedding=embedding,
                    clustering="pending" if person is None and (crop or embedding) else "done",
                    **fields,
                )
                session.add(row)
            else:
                for name, value in fields.items():
                    setattr(row, name, value)
                if crop is not None:
                    row.crop = crop
                if embedding is not None:
                    row.embedding = embedding
                if not row.operator_label:
                    left.add(_relabel(row, person))
            rows.append(row)
        await strangers_repo.refresh(session, left)
        await session.flush()
        events = [
            {
                "id": row.id,
                "camera_id": row.camera_id,
                "person_id": row.person_id,
                "known": row.person_id is not None,
                "stranger_id": row.stranger_id,
                "track_id": row.track_id,
                "first_seen": row.first_seen.timestamp(),
                "last_seen": row.last_seen.timestamp(),
                "best_distance": row.best_distance,
                "frames": row.frames,
                "worker_id": worker_id,
            }
            for row in rows
        ]
        tenant_id = principal.tenant_id

        clustering = any(row.clustering == "pending" for row in rows)

        async def publish() -> None:
            if clustering:
                self.state.clusterer_wakeup.set()
            for event in events:
                await self.state.events.publish(tenant_id, "sighting", event)

        uow.after_commit(publish)
        return schemas.SightingBatchResult(accepted=len(rows), ids=[r.id for r in rows])

    async def page(
        self,
        uow: UnitOfWork,
        principal: Principal,
        f: SightingFilter,
        offset: int,
        limit: int,
    ) -> schemas.SightingPage:
        rows, total = await sightings_repo.page(uow.session, principal.tenant_id, f, offset, limit)
        return schemas.SightingPage(
            items=[sighting_out(*row) for row in rows], total=total, offset=offset, limit=limit
        )

    async def crop(self, uow: UnitOfWork, principal: Principal, sighting_id: int) -> bytes:
        row = await sightings_repo.get(uow.session, principal.tenant_id, sighting_id)
        if row is None or row.crop is None:
            raise SightingNotFound(f"sighting {sighting_id} has no face crop in this tenant")
        return row.crop

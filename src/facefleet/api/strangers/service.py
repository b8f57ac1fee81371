"""Strangers through the API: listing, promotion to a person with all their sightings, and
erasure."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from facefleet.api.errors import Conflict, NotFound
from facefleet.api.people import faces as face_work
from facefleet.api.people.erasure import erase_sightings
from facefleet.api.people.schemas import PersonCreate
from facefleet.api.people.service import GalleryService, PersonNotFound, face_out, person_out
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.storage.db import audit_repo, people_repo, sightings_repo, strangers_repo
from facefleet.api.storage.db.models import Person, Sighting, Stranger
from facefleet.api.strangers import schemas
from facefleet.api.unit_of_work import UnitOfWork


class StrangerNotFound(NotFound):
    pass


def stranger_out(row: Stranger, cover: int | None) -> schemas.StrangerOut:
    return schemas.StrangerOut(
        id=row.id,
        sightings=row.sightings,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        created_at=row.created_at,
        crop_url=f"/v1/sightings/{cover}/crop" if cover is not None else None,
        sightings_url=f"/v1/sightings?stranger_id={row.id}",
        promoted_to_person_id=row.person_id,
        promoted_at=row.promoted_at,
    )


class StrangerService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.gallery = GalleryService(state)

    async def page(
        self,
        uow: UnitOfWork,
        principal: Principal,
        min_sightings: int,
        since: datetime | None,
        offset: int,
        limit: int,
    ) -> schemas.StrangerPage:
        session = uow.session
        rows, total = await strangers_repo.page(
            session, principal.tenant_id, min_sightings, since, offset, limit
        )
        covers = await strangers_repo.covers(session, [r.id for r in rows])
        return schemas.StrangerPage(
            items=[stranger_out(r, covers.get(r.id)) for r in rows],
            total=total,
            offset=offset,
            limit=limit,
            pending=await strangers_repo.pending_count(session, principal.tenant_id),
        )

    async def _stranger(
        self, uow: UnitOfWork, principal: Principal, stranger_id: int, *, lock: bool = False
    ) -> Stranger:
        find = strangers_repo.lock if lock else strangers_repo.get
        row = await find(uow.session, principal.tenant_id, stranger_id)
        if row is None:
            raise StrangerNotFound(f"stranger {stranger_id} does not exist in this tenant")
        return row

    async def get(
        self, uow: UnitOfWork, principal: Principal, stranger_id: int
    ) -> schemas.StrangerOut:
        row = await self._stranger(uow, principal, stranger_id)
        covers = await strangers_repo.covers(uow.session, [row.id])
        return stranger_out(row, covers.get(row.id))

    async def promote(
        self,
        uow: UnitOfWork,
        principal: Principal,
        stranger_id: int,
        req: schemas.PromoteStranger,
    ) -> schemas.PromoteResponse:
        """The stranger is this person: every sighting of it is theirs, its best crops are
        enrolled, and the stranger stays only as a link to the person."""
        session = uow.session
        # Locked: the clusterer cannot add a sighting to it between the move and the end.
        stranger = await self._stranger(uow, principal, stranger_id, lock=True)
        if stranger.promoted_at is not None:
            to = (
                "a person since deleted"
                if stranger.person_id is None
                else (f"person {stranger.person_id}")
            )
            raise Conflict(f"stranger {stranger_id} was promoted to {to}")
        if req.person_id is not None:
            found = await people_repo.get(session, principal.tenant_id, req.person_id)
            if found is None:
                raise PersonNotFound(f"person {req.person_id} does not exist in this tenant")
            person: Person = found
        else:
            assert req.name is not None  # the body's validator
            created = await self.gallery.create(
                uow,
                principal,
                PersonCreate(
                    name=req.name, external_ref=req.external_ref, attributes=req.attributes
                ),
            )
            person = await session.get_one(Person, created.id)
        sightings = await sightings_repo.of_stranger(session, stranger.id)
        enrolled, skipped = await self._enroll(sightings, req.enroll)
        faces = await self.gallery.store_faces(uow, principal, person, enrolled)
        moved = await session.execute(
            update(Sighting)
            .where(Sighting.stranger_id == stranger.id)
            .values(person_id=person.id, stranger_id=None, clustering="done", operator_label=True)
            .execution_options(synchronize_session=False)
        )
        count = int(moved.rowcount)  # type: ignore[attr-defined]
        stranger.person_id = person.id
        stranger.centroid = None  # the person's faces say who this is now
        stranger.members = 0
        stranger.promoted_at = datetime.now(UTC)
        audit_repo.record(
            session,
            principal.tenant_id,
            "stranger_promoted",
            person_id=person.id,
            stranger_id=stranger.id,
            key_id=principal.key_id,
            sightings=count,
            faces=len(faces),
        )
        await session.flush()
        version = await self.gallery.edited(uow, principal)
        tenant_id = principal.tenant_id
        event = {"stranger_id": stranger.id, "person_id": person.id, "sightings": count}

        async def publish() -> None:
            await self.state.events.publish(tenant_id, "stranger_promoted", event)

        uow.after_commit(publish)
        counts = await people_repo.face_counts(session, [person.id])
        return schemas.PromoteResponse(
            person=person_out(person, counts.get(person.id, 0)),
            stranger_id=stranger.id,
            sightings_moved=count,
            faces=[face_out(f) for f in faces],
            skipped=skipped,
            gallery_version=version,
        )

    async def _enroll(
        self, sightings: list[Sighting], wanted: int
    ) -> tuple[list[tuple[face_work.EnrolledFace, int | None]], list[schemas.SkippedCrop]]:
        enrolled: list[tuple[face_work.EnrolledFace, int | None]] = []
        skipped: list[schemas.SkippedCrop] = []
        if wanted == 0:
            return enrolled, skipped
        engine = await self.state.face_engine.get()
        for sighting in sorted(sightings, key=lambda s: (-s.frames, -s.id)):
            if len(enrolled) == wanted:
                break
            if sighting.crop is None:
                continue
            try:
                face = await face_work.enroll_one(
                    engine,
                    f"sighting {sighting.id}",
                    sighting.crop,
                    self.state.settings.max_image_pixels,
                )
            except face_work.UnprocessableImage as exc:
                skipped.append(schemas.SkippedCrop(sighting_id=sighting.id, reason=exc.detail))
                continue
            enrolled.append((face, sighting.id))
        return enrolled, skipped

    async def erase(
        self, uow: UnitOfWork, principal: Principal, stranger_id: int
    ) -> schemas.StrangerErasure:
        """The stranger and every sighting of it, with what was made from them."""
        session = uow.session
        stranger = await self._stranger(uow, principal, stranger_id, lock=True)
        ids = [s.id for s in await sightings_repo.of_stranger(session, stranger.id)]
        faces, negatives, crops = await erase_sightings(session, ids)
        await session.delete(stranger)
        audit = audit_repo.record(
            session,
            principal.tenant_id,
            "stranger_erased",
            stranger_id=stranger_id,
            key_id=principal.key_id,
            sightings=len(ids),
            crops=crops,
            faces=faces,
            negatives=negatives,
        )
        await session.flush()
        if faces or negatives:
            await self.gallery.edited(uow, principal)
        tenant_id = principal.tenant_id
        receipt = schemas.StrangerErasure(
            stranger_id=stranger_id,
            sightings=len(ids),
            crops=crops,
            faces=faces,
            negatives=negatives,
            audit_id=audit.id,
        )

        async def publish() -> None:
            await self.state.events.publish(tenant_id, "stranger_erased", receipt.model_dump())

        uow.after_commit(publish)
        return receipt

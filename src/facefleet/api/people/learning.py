"""Teaching the gallery from what the cameras saw: a sighting assigned to a person (its crop
enrolled), a sighting that is "not this person" (a negative example), a face moved to
another person, two people merged. Every change re-labels the sightings it concerns and
bumps the gallery version, so workers match by it at their next reload."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update

from facefleet.api.errors import FacefleetError, NotFound
from facefleet.api.people import faces as face_work
from facefleet.api.people import schemas
from facefleet.api.people.service import FaceNotFound, GalleryService, PersonNotFound, face_out
from facefleet.api.security import Principal
from facefleet.api.sightings.schemas import SightingOut
from facefleet.api.sightings.service import SightingNotFound, sighting_out
from facefleet.api.state import AppState
from facefleet.api.storage.db import audit_repo, people_repo, sightings_repo, strangers_repo
from facefleet.api.storage.db.models import (
    FaceEmbedding,
    NegativeExample,
    Person,
    Sighting,
    Stranger,
)
from facefleet.api.unit_of_work import UnitOfWork
from facefleet.face.model import MODEL_NAME


class NoFaceToLearn(FacefleetError):
    status_code = 422


class NegativeNotFound(NotFound):
    pass


def negative_out(row: NegativeExample) -> schemas.NegativeOut:
    return schemas.NegativeOut(
        id=row.id, person_id=row.person_id, sighting_id=row.sighting_id, created_at=row.created_at
    )


class LearningService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.gallery = GalleryService(state)

    async def _sighting(self, uow: UnitOfWork, principal: Principal, sighting_id: int) -> Sighting:
        row = await sightings_repo.get(uow.session, principal.tenant_id, sighting_id)
        if row is None:
            raise SightingNotFound(f"sighting {sighting_id} does not exist in this tenant")
        return row

    async def _person(self, uow: UnitOfWork, principal: Principal, person_id: int) -> Person:
        person = await people_repo.get(uow.session, principal.tenant_id, person_id)
        if person is None:
            raise PersonNotFound(f"person {person_id} does not exist in this tenant")
        return person

    async def _sighting_out(
        self, uow: UnitOfWork, principal: Principal, sighting_id: int
    ) -> SightingOut:
        await uow.session.flush()
        named = await sightings_repo.named(uow.session, principal.tenant_id, sighting_id)
        assert named is not None  # the caller holds it
        return sighting_out(*named)

    def _labelled(
        self, uow: UnitOfWork, principal: Principal, reason: str, changes: list[dict[str, Any]]
    ) -> None:
        tenant_id = principal.tenant_id

        async def publish() -> None:
            for change in changes:
                await self.state.events.publish(
                    tenant_id, "sighting_labelled", {**change, "reason": reason}
                )

        uow.after_commit(publish)

    async def assign(
        self, uow: UnitOfWork, principal: Principal, sighting_id: int, req: schemas.AssignSighting
    ) -> schemas.AssignResponse:
        """The sighting is this person; its crop is enrolled like an uploaded photo."""
        sighting = await self._sighting(uow, principal, sighting_id)
        person = await self._person(uow, principal, req.person_id)
        # A face enrolled from this sighting for someone else contradicts the label.
        await uow.session.execute(
            delete(FaceEmbedding).where(
                FaceEmbedding.sighting_id == sighting.id, FaceEmbedding.person_id != person.id
            )
        )
        face = await uow.session.scalar(
            select(FaceEmbedding).where(
                FaceEmbedding.sighting_id == sighting.id, FaceEmbedding.person_id == person.id
            )
        )
        if req.enroll and face is None:
            if sighting.crop is None:
                raise NoFaceToLearn(
                    f"sighting {sighting_id} has no face crop to enroll (the worker sent "
                    "none, or retention removed it); send enroll=false to only label it"
                )
            enrolled = await face_work.enroll_one(
                await self.state.face_engine.get(),
                f"sighting {sighting_id}",
                sighting.crop,
                self.state.settings.max_image_pixels,
            )
            (face,) = await self.gallery.store_faces(
                uow, principal, person, [(enrolled, sighting.id)]
            )
        previous, left = sighting.person_id, sighting.stranger_id
        sighting.person_id = person.id
        sighting.stranger_id = None
        sighting.clustering = "done"
        sighting.operator_label = True
        # Saying who it is takes back an earlier "not this person" about the same face.
        await uow.session.execute(
            delete(NegativeExample).where(
                NegativeExample.sighting_id == sighting.id, NegativeExample.person_id == person.id
            )
        )
        await strangers_repo.refresh(uow.session, [left])
        version = await self.gallery.edited(uow, principal)
        self._labelled(
            uow,
            principal,
            "assigned",
            [{"id": sighting.id, "person_id": person.id, "previous_person_id": previous}],
        )
        return schemas.AssignResponse(
            sighting=await self._sighting_out(uow, principal, sighting.id),
            face=face_out(face) if face is not None else None,
            gallery_version=version,
        )

    async def not_person(
        self, uow: UnitOfWork, principal: Principal, sighting_id: int, req: schemas.NotPerson
    ) -> schemas.NotPersonResponse:
        """The sighting is not this person: its face becomes their negative example."""
        sighting = await self._sighting(uow, principal, sighting_id)
        person_id = req.person_id if req.person_id is not None else sighting.person_id
        if person_id is None:
            raise NoFaceToLearn(
                f"sighting {sighting_id} is not labelled with anyone: send the person_id it is not"
            )
        person = await self._person(uow, principal, person_id)
        embedding = sighting.embedding
        if embedding is None and sighting.crop is not None:
            vector = await face_work.embed_crop(
                await self.state.face_engine.get(),
                f"sighting {sighting_id}",
                sighting.crop,
                self.state.settings.max_image_pixels,
            )
            if vector is not None:
                embedding = sighting.embedding = vector.astype("<f4").tobytes()
        if embedding is None:
            raise NoFaceToLearn(
                f"sighting {sighting_id} has no face to learn from: no embedding, and no "
                "face found in its crop"
            )
        negative = NegativeExample(
            tenant_id=principal.tenant_id,
            person_id=person.id,
            model=MODEL_NAME,
            embedding=embedding,
            sighting_id=sighting.id,
        )
        uow.session.add(negative)
        # A face enrolled from this very sighting contradicts it: it goes.
        await uow.session.execute(
            delete(FaceEmbedding).where(
                FaceEmbedding.sighting_id == sighting.id, FaceEmbedding.person_id == person.id
            )
        )
        changes = []
        if sighting.person_id == person.id:
            sighting.person_id = None
            sighting.clustering = "pending"  # an unknown face now: it may be a stranger
            changes.append({"id": sighting.id, "person_id": None, "previous_person_id": person.id})
        sighting.operator_label = True
        await uow.session.flush()
        version = await self.gallery.edited(uow, principal)
        self._labelled(uow, principal, "not_person", changes)
        if changes:
            uow.after_commit(self._wake_clusterer)
        return schemas.NotPersonResponse(
            sighting=await self._sighting_out(uow, principal, sighting.id),
            negative=negative_out(negative),
            gallery_version=version,
        )

    async def _wake_clusterer(self) -> None:
        self.state.clusterer_wakeup.set()

    async def negatives(
        self, uow: UnitOfWork, principal: Principal, person_id: int
    ) -> list[schemas.NegativeOut]:
        person = await self._person(uow, principal, person_id)
        return [negative_out(n) for n in await people_repo.negatives_of(uow.session, person.id)]

    async def remove_negative(
        self, uow: UnitOfWork, principal: Principal, person_id: int, negative_id: int
    ) -> None:
        row = await people_repo.negative(uow.session, principal.tenant_id, negative_id)
        if row is None or row.person_id != person_id:
            raise NegativeNotFound(f"person {person_id} has no negative example {negative_id}")
        await uow.session.delete(row)
        await uow.session.flush()
        await self.gallery.edited(uow, principal)

    async def move_face(
        self,
        uow: UnitOfWork,
        principal: Principal,
        person_id: int,
        face_id: int,
        req: schemas.MoveFace,
    ) -> schemas.FaceOut:
        """The face is someone else's; the sighting it was enrolled from follows it."""
        face = await people_repo.face(uow.session, principal.tenant_id, face_id)
        if face is None or face.person_id != person_id:
            raise FaceNotFound(f"person {person_id} has no face {face_id}")
        target = await self._person(uow, principal, req.person_id)
        face.person_id = target.id
        changes = []
        if face.sighting_id is not None:
            sighting = await sightings_repo.get(uow.session, principal.tenant_id, face.sighting_id)
            if sighting is not None:
                changes.append(
                    {"id": sighting.id, "person_id": target.id, "previous_person_id": person_id}
                )
                left = sighting.stranger_id
                sighting.person_id, sighting.stranger_id = target.id, None
                sighting.clustering, sighting.operator_label = "done", True
                await strangers_repo.refresh(uow.session, [left])
        await uow.session.flush()
        await self.gallery.edited(uow, principal)
        self._labelled(uow, principal, "face_moved", changes)
        return face_out(face)

    async def merge(
        self, uow: UnitOfWork, principal: Principal, person_id: int, req: schemas.MergePeople
    ) -> schemas.MergeResponse:
        """One person into another: faces, negatives, sightings and stranger links move."""
        if req.into_person_id == person_id:
            raise NoFaceToLearn("a person cannot be merged into themselves")
        source = await self._person(uow, principal, person_id)
        target = await self._person(uow, principal, req.into_person_id)
        session = uow.session
        sightings = await session.scalar(
            select(func.count()).select_from(Sighting).where(Sighting.person_id == source.id)
        )
        moved = {}
        for model in (FaceEmbedding, NegativeExample, Sighting, Stranger):
            result = await session.execute(
                update(model)
                .where(model.person_id == source.id)
                .values(person_id=target.id)
                .execution_options(synchronize_session=False)
            )
            moved[model.__tablename__] = int(result.rowcount)  # type: ignore[attr-defined]
        await session.delete(source)
        await session.flush()
        audit_repo.record(
            session,
            principal.tenant_id,
            "people_merged",
            person_id=target.id,
            key_id=principal.key_id,
            merged_person_id=source.id,
            faces=moved["faces"],
            negatives=moved["negative_examples"],
            sightings=moved["sightings"],
        )
        version = await self.gallery.edited(uow, principal)
        tenant_id = principal.tenant_id
        event = {"from": source.id, "into": target.id, "sightings": int(sightings or 0)}

        async def publish() -> None:
            await self.state.events.publish(tenant_id, "people_merged", event)

        uow.after_commit(publish)
        return schemas.MergeResponse(
            person=await self.gallery.get(uow, principal, target.id),
            faces_moved=moved["faces"],
            negatives_moved=moved["negative_examples"],
            sightings_moved=moved["sightings"],
            gallery_version=version,
        )

"""The tenant's gallery: people, their enrolled faces, recognition by hand, the gallery
that workers load. Every edit bumps the tenant's gallery version."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

from sqlalchemy import delete

from facefleet.api.errors import NotFound
from facefleet.api.people import faces as face_work
from facefleet.api.people import schemas
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.storage.db import people_repo, tenants_repo
from facefleet.api.storage.db.models import FaceEmbedding, Person, Stranger
from facefleet.api.tenants.gallery_versions import gallery_changed
from facefleet.api.unit_of_work import UnitOfWork
from facefleet.face.model import EMBEDDING_DIM, MODEL_NAME


class PersonNotFound(NotFound):
    pass


class FaceNotFound(NotFound):
    pass


def box_out(box: dict[str, int]) -> schemas.BoxOut:
    return schemas.BoxOut(**box)


def face_out(face: FaceEmbedding) -> schemas.FaceOut:
    return schemas.FaceOut(
        id=face.id,
        person_id=face.person_id,
        model=face.model,
        box=box_out(face.box),
        sharpness=face.sharpness,
        source_name=face.source_name,
        created_at=face.created_at,
        thumbnail_url=f"/v1/people/faces/{face.id}/thumbnail" if face.thumbnail else None,
    )


def person_out(person: Person, face_count: int) -> schemas.PersonOut:
    return schemas.PersonOut(
        id=person.id,
        name=person.name,
        external_ref=person.external_ref,
        attributes=person.attributes,
        face_count=face_count,
        created_at=person.created_at,
        updated_at=person.updated_at,
    )


class GalleryService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def _person(self, uow: UnitOfWork, principal: Principal, person_id: int) -> Person:
        person = await people_repo.get(uow.session, principal.tenant_id, person_id)
        if person is None:
            raise PersonNotFound(f"person {person_id} does not exist in this tenant")
        return person

    async def edited(self, uow: UnitOfWork, principal: Principal) -> int:
        return await gallery_changed(self.state, uow, principal.tenant_id)

    async def create(
        self, uow: UnitOfWork, principal: Principal, req: schemas.PersonCreate
    ) -> schemas.PersonOut:
        person = Person(
            tenant_id=principal.tenant_id,
            name=req.name,
            external_ref=req.external_ref,
            attributes=req.attributes,
        )
        uow.session.add(person)
        await uow.session.flush()
        await self.edited(uow, principal)
        return person_out(person, 0)

    async def page(
        self, uow: UnitOfWork, principal: Principal, query: str | None, offset: int, limit: int
    ) -> schemas.PersonPage:
        people, total = await people_repo.page(
            uow.session, principal.tenant_id, query, offset, limit
        )
        counts = await people_repo.face_counts(uow.session, [p.id for p in people])
        return schemas.PersonPage(
            items=[person_out(p, counts.get(p.id, 0)) for p in people],
            total=total,
            offset=offset,
            limit=limit,
        )

    async def get(
        self, uow: UnitOfWork, principal: Principal, person_id: int
    ) -> schemas.PersonDetail:
        import numpy as np

        from facefleet.face.gallery import person_thresholds

        person = await self._person(uow, principal, person_id)
        faces = await people_repo.faces_of(uow.session, person.id)
        negatives = await people_repo.negatives_of(uow.session, person.id)
        own = person_thresholds(
            [np.frombuffer(f.embedding, dtype="<f4") for f in faces if f.model == MODEL_NAME],
            ["self" for f in faces if f.model == MODEL_NAME],
        )
        return schemas.PersonDetail(
            **person_out(person, len(faces)).model_dump(),
            faces=[face_out(f) for f in faces],
            negative_count=len(negatives),
            match_threshold=own.get("self"),
        )

    async def update(
        self, uow: UnitOfWork, principal: Principal, person_id: int, req: schemas.PersonUpdate
    ) -> schemas.PersonOut:
        person = await self._person(uow, principal, person_id)
        for field, value in req.model_dump(exclude_unset=True).items():
            if field == "name" and value is None:
                continue
            setattr(person, field, value if value is not None or field != "attributes" else {})
        person.updated_at = datetime.now(UTC)
        await uow.session.flush()
        await self.edited(uow, principal)
        counts = await people_repo.face_counts(uow.session, [person.id])
        return person_out(person, counts.get(person.id, 0))

    async def delete(self, uow: UnitOfWork, principal: Principal, person_id: int) -> None:
        """The person leaves the gallery; their sightings stay, unlabelled (erase forgets)."""
        person = await self._person(uow, principal, person_id)
        # Strangers promoted into them link to nobody now: the links go.
        await uow.session.execute(
            delete(Stranger)
            .where(Stranger.person_id == person.id)
            .execution_options(synchronize_session=False)
        )
        await uow.session.delete(person)
        await uow.session.flush()
        await self.edited(uow, principal)

    async def enroll(
        self,
        uow: UnitOfWork,
        principal: Principal,
        person_id: int,
        uploads: list[tuple[str, bytes]],
    ) -> schemas.EnrollResponse:
        """Add faces from photos: all of them, or none when one is refused (422)."""
        person = await self._person(uow, principal, person_id)
        max_pixels = self.state.settings.max_image_pixels
        engine = await self.state.face_engine.get()
        enrolled = [
            await face_work.enroll_one(engine, name, data, max_pixels) for name, data in uploads
        ]
        rows = await self.store_faces(uow, principal, person, [(face, None) for face in enrolled])
        version = await self.edited(uow, principal)
        return schemas.EnrollResponse(
            person_id=person.id, faces=[face_out(r) for r in rows], gallery_version=version
        )

    async def store_faces(
        self,
        uow: UnitOfWork,
        principal: Principal,
        person: Person,
        enrolled: list[tuple[face_work.EnrolledFace, int | None]],
    ) -> list[FaceEmbedding]:
        """Enrolled faces (each with the sighting it came from, if any) into the gallery.

        The caller bumps the gallery version.
        """
        rows = [
            FaceEmbedding(
                tenant_id=principal.tenant_id,
                person_id=person.id,
                model=MODEL_NAME,
                embedding=face.embedding.astype("<f4").tobytes(),
                box={
                    "left": face.box.left,
                    "top": face.box.top,
                    "right": face.box.right,
                    "bottom": face.box.bottom,
                },
                sharpness=face.sharpness,
                thumbnail=face.thumbnail or None,
                source_name=face.source_name[:255],
                sighting_id=sighting_id,
            )
            for face, sighting_id in enrolled
        ]
        uow.session.add_all(rows)
        person.updated_at = datetime.now(UTC)
        await uow.session.flush()
        return rows

    async def remove_face(
        self, uow: UnitOfWork, principal: Principal, person_id: int, face_id: int
    ) -> None:
        face = await people_repo.face(uow.session, principal.tenant_id, face_id)
        if face is None or face.person_id != person_id:
            raise FaceNotFound(f"person {person_id} has no face {face_id}")
        await uow.session.delete(face)
        await uow.session.flush()
        await self.edited(uow, principal)

    async def thumbnail(self, uow: UnitOfWork, principal: Principal, face_id: int) -> bytes:
        face = await people_repo.face(uow.session, principal.tenant_id, face_id)
        if face is None or not face.thumbnail:
            raise FaceNotFound(f"face {face_id} has no thumbnail in this tenant")
        return face.thumbnail

    async def gallery(self, uow: UnitOfWork, principal: Principal) -> schemas.GalleryOut:
        return await self.wire(uow, principal.tenant_id)

    async def wire(self, uow: UnitOfWork, tenant_id: str) -> schemas.GalleryOut:
        """The tenant's gallery as workers load it (and as /v1/recognize matches with)."""
        tenant = await tenants_repo.tenant(uow.session, tenant_id)
        rows = await people_repo.all_embeddings(uow.session, tenant_id, MODEL_NAME)
        negatives = await people_repo.all_negatives(uow.session, tenant_id, MODEL_NAME)
        names = await people_repo.names(uow.session, tenant_id)
        return await asyncio.to_thread(
            build_wire,
            tenant.gallery_version,
            tenant.match_threshold,
            tenant.match_ratio,
            rows,
            negatives,
            names,
        )

    async def recognize(
        self,
        uow: UnitOfWork,
        principal: Principal,
        name: str,
        data: bytes,
        threshold: float | None,
    ) -> schemas.RecognizeResponse:
        from facefleet.face.gallery import from_wire

        wire = await self.wire(uow, principal.tenant_id)
        limit = threshold if threshold is not None else wire.threshold
        _, found = await face_work.analyze(
            await self.state.face_engine.get(), name, data, self.state.settings.max_image_pixels
        )
        gallery = await asyncio.to_thread(from_wire, wire)
        matches = gallery.match([f.embedding for f in found], limit) if found else []
        out = []
        for face, match in zip(found, matches, strict=True):
            pid = int(match.person_id) if match.person_id is not None else None
            out.append(
                schemas.RecognizedFace(
                    box=schemas.BoxOut(
                        left=face.box.left,
                        top=face.box.top,
                        right=face.box.right,
                        bottom=face.box.bottom,
                    ),
                    person_id=pid,
                    person_name=wire.people.get(str(pid)) if pid is not None else None,
                    distance=None if math.isinf(match.distance) else round(match.distance, 4),
                    known=pid is not None,
                )
            )
        return schemas.RecognizeResponse(
            faces=out,
            threshold=limit,
            ratio=wire.ratio,
            gallery_version=wire.version,
            model=MODEL_NAME,
        )


def build_wire(
    version: int,
    threshold: float,
    ratio: float,
    rows: list[tuple[int, bytes]],
    negatives: list[tuple[int, bytes]],
    names: dict[int, str],
) -> schemas.GalleryOut:
    import numpy as np

    from facefleet.face.gallery import encode_matrix, person_thresholds

    ids = [pid for pid, _ in rows]
    matrix = np.frombuffer(b"".join(e for _, e in rows), dtype="<f4").reshape(-1, EMBEDDING_DIM)
    return schemas.GalleryOut(
        version=version,
        model=MODEL_NAME,
        threshold=threshold,
        dim=EMBEDDING_DIM,
        person_ids=ids,
        people={str(pid): name for pid, name in names.items()},
        embeddings_b64=encode_matrix([e for _, e in rows]),
        ratio=ratio,
        person_thresholds=person_thresholds(matrix, [str(pid) for pid in ids]),
        negative_person_ids=[pid for pid, _ in negatives],
        negatives_b64=encode_matrix([e for _, e in negatives]),
    )

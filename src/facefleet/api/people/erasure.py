"""Erasure in one call: a person, or a stranger, and every trace of their face.

A person's erasure removes, in one transaction: the person; their enrolled faces (embeddings
and thumbnails); their negative examples; every sighting labelled with them (times, crops,
embeddings); faces and negative examples made from those sightings for anyone else; and the
strangers promoted into them. A stranger's removes the stranger and its sightings the same
way. What remains is an audit row of ids and counts: no name, no image, no embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from facefleet.api.people import schemas
from facefleet.api.people.service import GalleryService, PersonNotFound
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.storage.db import audit_repo, people_repo, strangers_repo
from facefleet.api.storage.db.models import (
    Base,
    FaceEmbedding,
    NegativeExample,
    Sighting,
    Stranger,
)
from facefleet.api.unit_of_work import UnitOfWork

# Ids per IN (...) list: far below SQLite's and asyncpg's bind-parameter limits.
CHUNK = 1000


def chunks(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[i : i + CHUNK]) for i in range(0, len(ids), CHUNK)]


async def _count(session: AsyncSession, *where: ColumnElement[bool]) -> int:
    return int(await session.scalar(select(func.count()).select_from(Sighting).where(*where)) or 0)


async def delete_where(
    session: AsyncSession, model: type[Base], *where: ColumnElement[bool]
) -> int:
    """Delete the rows of ``model`` matching ``where``; how many there were."""
    result = await session.execute(
        delete(model).where(*where).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def erase_sightings(session: AsyncSession, ids: Sequence[int]) -> tuple[int, int, int]:
    """Delete sightings, and the faces and negatives made from them: (faces, negatives,
    crops) removed along with them."""
    faces = negatives = crops = 0
    for chunk in chunks(ids):
        crops += await _count(session, Sighting.id.in_(chunk), Sighting.crop.is_not(None))
        faces += await delete_where(session, FaceEmbedding, FaceEmbedding.sighting_id.in_(chunk))
        negatives += await delete_where(
            session, NegativeExample, NegativeExample.sighting_id.in_(chunk)
        )
        await delete_where(session, Sighting, Sighting.id.in_(chunk))
    return faces, negatives, crops


class ErasureService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.gallery = GalleryService(state)

    async def erase_person(
        self, uow: UnitOfWork, principal: Principal, person_id: int
    ) -> schemas.ErasureReceipt:
        session = uow.session
        person = await people_repo.get(session, principal.tenant_id, person_id)
        if person is None:
            raise PersonNotFound(f"person {person_id} does not exist in this tenant")
        sighting_rows = await session.execute(
            select(Sighting.id, Sighting.stranger_id).where(Sighting.person_id == person.id)
        )
        sightings = [(sid, stranger) for sid, stranger in sighting_rows]
        faces, negatives, crops = await erase_sightings(session, [sid for sid, _ in sightings])
        faces += await delete_where(session, FaceEmbedding, FaceEmbedding.person_id == person.id)
        negatives += await delete_where(
            session, NegativeExample, NegativeExample.person_id == person.id
        )
        strangers = await delete_where(session, Stranger, Stranger.person_id == person.id)
        await session.delete(person)
        await strangers_repo.refresh(session, [stranger for _, stranger in sightings])
        audit = audit_repo.record(
            session,
            principal.tenant_id,
            "person_erased",
            person_id=person_id,
            key_id=principal.key_id,
            faces=faces,
            negatives=negatives,
            sightings=len(sightings),
            crops=crops,
            strangers=strangers,
        )
        await session.flush()
        version = await self.gallery.edited(uow, principal)
        receipt = schemas.ErasureReceipt(
            person_id=person_id,
            faces=faces,
            negatives=negatives,
            sightings=len(sightings),
            crops=crops,
            strangers=strangers,
            audit_id=audit.id,
            gallery_version=version,
        )
        tenant_id = principal.tenant_id
        event = receipt.model_dump(exclude={"gallery_version"})

        async def publish() -> None:
            await self.state.events.publish(tenant_id, "person_erased", event)

        uow.after_commit(publish)
        return receipt

"""People and their enrolled face embeddings."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import FaceEmbedding, NegativeExample, Person


async def get(session: AsyncSession, tenant_id: str, person_id: int) -> Person | None:
    return await session.scalar(
        select(Person).where(Person.tenant_id == tenant_id, Person.id == person_id)
    )


async def page(
    session: AsyncSession, tenant_id: str, query: str | None, offset: int, limit: int
) -> tuple[list[Person], int]:
    where = [Person.tenant_id == tenant_id]
    if query:
        where.append(func.lower(Person.name).contains(query.lower(), autoescape=True))
    total = await session.scalar(select(func.count()).select_from(Person).where(*where))
    rows = await session.scalars(
        select(Person).where(*where).order_by(Person.name, Person.id).offset(offset).limit(limit)
    )
    return list(rows.all()), int(total or 0)


async def face_counts(session: AsyncSession, person_ids: Sequence[int]) -> dict[int, int]:
    if not person_ids:
        return {}
    rows = await session.execute(
        select(FaceEmbedding.person_id, func.count())
        .where(FaceEmbedding.person_id.in_(list(person_ids)))
        .group_by(FaceEmbedding.person_id)
    )
    return {pid: n for pid, n in rows}


async def faces_of(session: AsyncSession, person_id: int) -> list[FaceEmbedding]:
    rows = await session.scalars(
        select(FaceEmbedding).where(FaceEmbedding.person_id == person_id).order_by(FaceEmbedding.id)
    )
    return list(rows.all())


async def face(session: AsyncSession, tenant_id: str, face_id: int) -> FaceEmbedding | None:
    return await session.scalar(
        select(FaceEmbedding).where(
            FaceEmbedding.tenant_id == tenant_id, FaceEmbedding.id == face_id
        )
    )


async def all_embeddings(
    session: AsyncSession, tenant_id: str, model: str
) -> list[tuple[int, bytes]]:
    rows = await session.execute(
        select(FaceEmbedding.person_id, FaceEmbedding.embedding)
        .where(FaceEmbedding.tenant_id == tenant_id, FaceEmbedding.model == model)
        .order_by(FaceEmbedding.id)
    )
    return [(pid, emb) for pid, emb in rows]


async def names(session: AsyncSession, tenant_id: str) -> dict[int, str]:
    rows = await session.execute(
        select(Person.id, Person.name).where(Person.tenant_id == tenant_id)
    )
    return {pid: name for pid, name in rows}


async def all_negatives(
    session: AsyncSession, tenant_id: str, model: str
) -> list[tuple[int, bytes]]:
    rows = await session.execute(
        select(NegativeExample.person_id, NegativeExample.embedding)
        .where(NegativeExample.tenant_id == tenant_id, NegativeExample.model == model)
        .order_by(NegativeExample.id)
    )
    return [(pid, emb) for pid, emb in rows]


async def negatives_of(session: AsyncSession, person_id: int) -> list[NegativeExample]:
    rows = await session.scalars(
        select(NegativeExample)
        .where(NegativeExample.person_id == person_id)
        .order_by(NegativeExample.id)
    )
    return list(rows.all())


async def negative(
    session: AsyncSession, tenant_id: str, negative_id: int
) -> NegativeExample | None:
    return await session.scalar(
        select(NegativeExample).where(
            NegativeExample.tenant_id == tenant_id, NegativeExample.id == negative_id
        )
    )

"""Sightings storage: upsert by (camera, epoch, track) and filtered listing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from facefleet.api.storage.db.models import Camera, Person, Sighting, Worker


@dataclass(frozen=True)
class SightingFilter:
    camera_id: int | None = None
    person_id: int | None = None
    known: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    stranger_id: int | None = None


@dataclass(frozen=True)
class PendingSighting:
    """An unknown sighting waiting for the stranger clusterer."""

    id: int
    tenant_id: str
    camera_id: int
    first_seen: datetime
    last_seen: datetime
    embedding: bytes | None
    crop: bytes | None


async def existing(
    session: AsyncSession, camera_id: int, epoch: int, track_ids: list[str]
) -> dict[str, Sighting]:
    rows = await session.scalars(
        select(Sighting).where(
            Sighting.camera_id == camera_id,
            Sighting.epoch == epoch,
            Sighting.track_id.in_(track_ids),
        )
    )
    return {s.track_id: s for s in rows}


def _filtered(
    query: Select[tuple[Sighting]], tenant_id: str, f: SightingFilter
) -> Select[tuple[Sighting]]:
    query = query.where(Sighting.tenant_id == tenant_id)
    if f.camera_id is not None:
        query = query.where(Sighting.camera_id == f.camera_id)
    if f.person_id is not None:
        query = query.where(Sighting.person_id == f.person_id)
    if f.stranger_id is not None:
        query = query.where(Sighting.stranger_id == f.stranger_id)
    if f.known is True:
        query = query.where(Sighting.person_id.is_not(None))
    elif f.known is False:
        query = query.where(Sighting.person_id.is_(None))
    if f.since is not None:
        query = query.where(Sighting.last_seen >= f.since)
    if f.until is not None:
        query = query.where(Sighting.first_seen <= f.until)
    return query


SightingRow = tuple[Sighting, str | None, str | None, str | None]


def _with_names(query: Select[Any]) -> Select[Any]:
    return (
        query.add_columns(Camera.name, Person.name, Worker.worker_id)
        .outerjoin(Camera, Camera.id == Sighting.camera_id)
        .outerjoin(Person, Person.id == Sighting.person_id)
        .outerjoin(Worker, Worker.id == Sighting.worker_pk)
    )


async def page(
    session: AsyncSession, tenant_id: str, f: SightingFilter, offset: int, limit: int
) -> tuple[list[SightingRow], int]:
    total = await session.scalar(
        _filtered(select(Sighting), tenant_id, f).with_only_columns(func.count())
    )
    rows = await session.execute(
        _with_names(_filtered(select(Sighting), tenant_id, f))
        .order_by(Sighting.first_seen.desc(), Sighting.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [(s, cam, person, worker) for s, cam, person, worker in rows], int(total or 0)


async def named(session: AsyncSession, tenant_id: str, sighting_id: int) -> SightingRow | None:
    """The sighting with its camera's, person's and worker's names."""
    query = select(Sighting).where(Sighting.tenant_id == tenant_id, Sighting.id == sighting_id)
    result = await session.execute(_with_names(query).execution_options(populate_existing=True))
    for sighting, camera, person, worker in result:
        return sighting, camera, person, worker
    return None


async def get(session: AsyncSession, tenant_id: str, sighting_id: int) -> Sighting | None:
    return await session.scalar(
        select(Sighting).where(Sighting.tenant_id == tenant_id, Sighting.id == sighting_id)
    )


async def people_ids(session: AsyncSession, tenant_id: str, ids: set[int]) -> set[int]:
    if not ids:
        return set()
    rows = await session.scalars(
        select(Person.id).where(Person.tenant_id == tenant_id, Person.id.in_(list(ids)))
    )
    return set(rows)


@dataclass(frozen=True)
class SightingNames:
    camera_name: str | None
    person_name: str | None
    has_crop: bool


async def names(session: AsyncSession, tenant_id: str, sighting_id: int) -> SightingNames | None:
    """The camera's and the person's names of a sighting, and whether it has a crop."""
    row = (
        await session.execute(
            select(Camera.name, Person.name, Sighting.crop.is_not(None))
            .select_from(Sighting)
            .outerjoin(Camera, Camera.id == Sighting.camera_id)
            .outerjoin(Person, Person.id == Sighting.person_id)
            .where(Sighting.tenant_id == tenant_id, Sighting.id == sighting_id)
        )
    ).first()
    if row is None:
        return None
    camera, person, has_crop = row
    return SightingNames(camera, person, bool(has_crop))


async def pending(session: AsyncSession, limit: int) -> list[PendingSighting]:
    rows = await session.execute(
        select(
            Sighting.id,
            Sighting.tenant_id,
            Sighting.camera_id,
            Sighting.first_seen,
            Sighting.last_seen,
            Sighting.embedding,
            Sighting.crop,
        )
        .where(Sighting.clustering == "pending")
        .order_by(Sighting.id)
        .limit(limit)
    )
    return [PendingSighting(*row) for row in rows]


async def settle(
    session: AsyncSession,
    sighting_id: int,
    *,
    embedding: bytes | None,
    stranger_id: int | None,
    state: str,
) -> bool:
    """Record the clusterer's outcome, unless the sighting changed meanwhile (labelled,
    erased): compare-and-set on its pending, unknown state."""
    values: dict[str, object] = {"clustering": state, "stranger_id": stranger_id}
    if embedding is not None:
        values["embedding"] = embedding
    result = await session.execute(
        update(Sighting)
        .where(
            Sighting.id == sighting_id,
            Sighting.clustering == "pending",
            Sighting.person_id.is_(None),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def of_person(session: AsyncSession, person_id: int) -> list[Sighting]:
    rows = await session.scalars(select(Sighting).where(Sighting.person_id == person_id))
    return list(rows.all())


async def of_stranger(session: AsyncSession, stranger_id: int) -> list[Sighting]:
    rows = await session.scalars(
        select(Sighting).where(Sighting.stranger_id == stranger_id).order_by(Sighting.id)
    )
    return list(rows.all())

"""Strangers: clusters of unknown sightings, and their upkeep when sightings leave them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import case, delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import Sighting, Stranger, UTCDateTime


async def get(session: AsyncSession, tenant_id: str, stranger_id: int) -> Stranger | None:
    return await session.scalar(
        select(Stranger).where(Stranger.tenant_id == tenant_id, Stranger.id == stranger_id)
    )


async def lock(session: AsyncSession, tenant_id: str, stranger_id: int) -> Stranger | None:
    """The stranger, its row locked (PostgreSQL) against the clusterer adding to it."""
    return await session.scalar(
        select(Stranger)
        .where(Stranger.tenant_id == tenant_id, Stranger.id == stranger_id)
        .with_for_update()
    )


async def centroids(
    session: AsyncSession, tenant_id: str, model: str
) -> list[tuple[int, bytes, int]]:
    """(id, centroid, members) of the tenant's strangers not promoted."""
    rows = await session.execute(
        select(Stranger.id, Stranger.centroid, Stranger.members)
        .where(
            Stranger.tenant_id == tenant_id,
            Stranger.model == model,
            Stranger.promoted_at.is_(None),
            Stranger.centroid.is_not(None),
        )
        .order_by(Stranger.id)
    )
    return [(sid, centroid, members) for sid, centroid, members in rows if centroid]


async def join(
    session: AsyncSession,
    stranger_id: int,
    centroid: bytes,
    members: int,
    first_seen: datetime,
    last_seen: datetime,
) -> bool:
    """Count one more sighting in the stranger; False when it is gone (promoted, erased)."""
    result = await session.execute(
        update(Stranger)
        .where(Stranger.id == stranger_id, Stranger.promoted_at.is_(None))
        .values(
            centroid=centroid,
            members=members,
            sightings=Stranger.sightings + 1,
            first_seen=case(
                (Stranger.first_seen > first_seen, literal(first_seen, UTCDateTime())),
                else_=Stranger.first_seen,
            ),
            last_seen=case(
                (Stranger.last_seen < last_seen, literal(last_seen, UTCDateTime())),
                else_=Stranger.last_seen,
            ),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def sighting_count(session: AsyncSession, stranger_id: int) -> int:
    count = await session.scalar(select(Stranger.sightings).where(Stranger.id == stranger_id))
    return int(count or 0)


async def page(
    session: AsyncSession,
    tenant_id: str,
    min_sightings: int,
    since: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[Stranger], int]:
    where = [
        Stranger.tenant_id == tenant_id,
        Stranger.promoted_at.is_(None),
        Stranger.sightings >= min_sightings,
    ]
    if since is not None:
        where.append(Stranger.last_seen >= since)
    total = await session.scalar(select(func.count()).select_from(Stranger).where(*where))
    rows = await session.scalars(
        select(Stranger)
        .where(*where)
        .order_by(Stranger.last_seen.desc(), Stranger.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all()), int(total or 0)


async def covers(session: AsyncSession, stranger_ids: list[int]) -> dict[int, int]:
    """Each stranger's latest sighting with a crop (its picture)."""
    if not stranger_ids:
        return {}
    rows = await session.execute(
        select(Sighting.stranger_id, func.max(Sighting.id))
        .where(Sighting.stranger_id.in_(stranger_ids), Sighting.crop.is_not(None))
        .group_by(Sighting.stranger_id)
    )
    return {sid: latest for sid, latest in rows if sid is not None}


async def pending_count(session: AsyncSession, tenant_id: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Sighting)
        .where(Sighting.clustering == "pending", Sighting.tenant_id == tenant_id)
    )
    return int(count or 0)


async def refresh(session: AsyncSession, stranger_ids: Iterable[int | None]) -> list[int]:
    """Recount strangers that sightings left; those left with none are deleted (returned).

    Their centroid becomes the mean of the embeddings still held by their sightings, or
    stays as it was when retention has cleared them all.
    """
    import numpy as np

    ids = sorted({sid for sid in stranger_ids if sid is not None})
    if not ids:
        return []
    await session.flush()
    stats = {
        sid: (count, first, last)
        for sid, count, first, last in await session.execute(
            select(
                Sighting.stranger_id,
                func.count(),
                func.min(Sighting.first_seen),
                func.max(Sighting.last_seen),
            )
            .where(Sighting.stranger_id.in_(ids))
            .group_by(Sighting.stranger_id)
        )
    }
    vectors: dict[int, list[bytes]] = {}
    for sid, embedding in await session.execute(
        select(Sighting.stranger_id, Sighting.embedding).where(
            Sighting.stranger_id.in_(ids), Sighting.embedding.is_not(None)
        )
    ):
        if sid is not None and embedding is not None:
            vectors.setdefault(sid, []).append(embedding)
    gone = [sid for sid in ids if sid not in stats]
    if gone:
        await session.execute(
            delete(Stranger)
            .where(Stranger.id.in_(gone), Stranger.promoted_at.is_(None))
            .execution_options(synchronize_session=False)
        )
    for sid, (count, first, last) in stats.items():
        values: dict[str, object] = {"sightings": count, "first_seen": first, "last_seen": last}
        if sid in vectors:
            matrix = np.stack([np.frombuffer(v, dtype="<f4") for v in vectors[sid]])
            values["centroid"] = matrix.mean(axis=0).astype("<f4").tobytes()
            values["members"] = len(vectors[sid])
        await session.execute(
            update(Stranger)
            .where(Stranger.id == sid)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    return gone

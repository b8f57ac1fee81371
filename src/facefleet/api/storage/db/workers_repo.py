"""Worker registrations: the durable half of a worker's record."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import Worker


async def get(session: AsyncSession, tenant_id: str, worker_id: str) -> Worker | None:
    return await session.scalar(
        select(Worker).where(Worker.tenant_id == tenant_id, Worker.worker_id == worker_id)
    )


async def get_for_update(session: AsyncSession, tenant_id: str, worker_id: str) -> Worker | None:
    return await session.scalar(
        select(Worker)
        .where(Worker.tenant_id == tenant_id, Worker.worker_id == worker_id)
        .with_for_update()
    )


async def lock_or_create(
    session: AsyncSession, tenant_id: str, worker_id: str
) -> tuple[Worker, bool]:
    """The worker's row, locked, created if it did not exist; True when created now.

    Two first registrations of one id at once must not both insert: the row is inserted
    unless it exists (one statement), then locked, so the second waits for the first.
    """
    postgresql = session.get_bind().dialect.name == "postgresql"
    insert = pg_insert(Worker) if postgresql else sqlite_insert(Worker)
    created = await session.execute(
        insert.values(
            tenant_id=tenant_id, worker_id=worker_id, status="registering"
        ).on_conflict_do_nothing(index_elements=["tenant_id", "worker_id"])
    )
    row = await get_for_update(session, tenant_id, worker_id)
    assert row is not None
    return row, getattr(created, "rowcount", 0) == 1


async def for_tenant(session: AsyncSession, tenant_id: str) -> list[Worker]:
    rows = await session.scalars(
        select(Worker).where(Worker.tenant_id == tenant_id).order_by(Worker.worker_id)
    )
    return list(rows.all())


async def status_counts(session: AsyncSession, tenant_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(Worker.status, func.count())
        .where(Worker.tenant_id == tenant_id)
        .group_by(Worker.status)
    )
    return {status: count for status, count in rows}


async def with_status(session: AsyncSession, statuses: Iterable[str]) -> list[Worker]:
    rows = await session.scalars(select(Worker).where(Worker.status.in_(list(statuses))))
    return list(rows.all())


async def set_status(
    session: AsyncSession, worker_pk: int, status: str, *, only_if: str | None = None
) -> bool:
    query = update(Worker).where(Worker.id == worker_pk)
    if only_if is not None:
        query = query.where(Worker.status == only_if)
    result = await session.execute(
        query.values(status=status).execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


# Preparing a row's parameters runs on the event loop: 4,000 rows at once (a 10,000-worker
# fleet every 2 s) held every heartbeat back for 50 to 150 ms; 500 take a few.
FLUSH_CHUNK = 500


async def flush_liveness(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Executemany UPDATEs of every dirty worker's last_seen_at and metrics, in one
    transaction, yielding to the event loop between chunks."""
    for start in range(0, len(rows), FLUSH_CHUNK):
        if start:
            await asyncio.sleep(0)
        await session.execute(update(Worker), list(rows[start : start + FLUSH_CHUNK]))


def liveness_row(worker_pk: int, last_seen: datetime, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"id": worker_pk, "last_seen_at": last_seen, "metrics": metrics}

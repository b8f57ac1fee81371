"""Audit history rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import WorkerEvent


def record(
    session: AsyncSession,
    tenant_id: str,
    worker_pk: int | None,
    kind: str,
    *,
    camera_id: int | None = None,
    epoch: int | None = None,
    **detail: Any,
) -> None:
    session.add(
        WorkerEvent(
            tenant_id=tenant_id,
            worker_pk=worker_pk,
            kind=kind,
            camera_id=camera_id,
            epoch=epoch,
            detail=detail,
        )
    )


async def for_worker(session: AsyncSession, worker_pk: int, limit: int) -> list[WorkerEvent]:
    rows = await session.scalars(
        select(WorkerEvent)
        .where(WorkerEvent.worker_pk == worker_pk)
        .order_by(WorkerEvent.id.desc())
        .limit(limit)
    )
    return list(reversed(rows.all()))

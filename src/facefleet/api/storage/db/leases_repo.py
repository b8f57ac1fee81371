"""Camera leases: the exclusive assignment and its release, each inside the caller's
transaction. The lease row changes owner only through these functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, exists, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import (
    FREE_CAMERA,
    Camera,
    CameraLease,
    CameraRequiredLabel,
    Worker,
)


@dataclass(frozen=True)
class HeldLease:
    camera_id: int
    epoch: int


async def lock_worker(session: AsyncSession, worker_pk: int) -> Worker | None:
    """The worker row, locked so one worker's concurrent requests cannot exceed its capacity.

    On PostgreSQL this is a row lock; on SQLite the whole transaction already holds the write
    lock (BEGIN IMMEDIATE).
    """
    return await session.scalar(select(Worker).where(Worker.id == worker_pk).with_for_update())


async def held_by(session: AsyncSession, worker_pk: int) -> list[HeldLease]:
    rows = await session.execute(
        select(CameraLease.camera_id, CameraLease.epoch)
        .where(CameraLease.worker_pk == worker_pk)
        .order_by(CameraLease.camera_id)
    )
    return [HeldLease(camera_id, epoch) for camera_id, epoch in rows]


def _free_for(tenant_id: str, worker_labels: Sequence[str], now: datetime) -> Select[CameraLease]:
    """Free leases of the tenant this worker may take now, best first: an index walk
    (ix_camera_leases_free) that stops at the first one, however many cameras there are."""
    missing_label = exists().where(
        CameraRequiredLabel.camera_id == CameraLease.camera_id,
        CameraRequiredLabel.label.not_in(list(worker_labels)),
    )
    return (
        select(CameraLease)
        .where(
            CameraLease.tenant_id == tenant_id,
            # Spelled as the partial indexes' condition, so both databases use them.
            text(FREE_CAMERA),
            or_(CameraLease.revoked_until.is_(None), CameraLease.revoked_until <= now),
            or_(CameraLease.backoff_until.is_(None), CameraLease.backoff_until <= now),
            ~missing_label,
        )
        .order_by(CameraLease.priority.desc(), CameraLease.waiting_since, CameraLease.camera_id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


async def claim_free_camera(
    session: AsyncSession,
    *,
    tenant_id: str,
    worker_pk: int,
    worker_labels: Sequence[str],
    now: datetime,
) -> tuple[Camera, int] | None:
    """Take the best free camera for this worker and return it with its new epoch.

    Order: the camera this worker held last (sticky), then priority, then the one waiting
    longest. Rows another transaction is assigning are skipped, not waited for.
    """
    free = _free_for(tenant_id, worker_labels, now)
    # Its own few cameras, found by ix_camera_leases_sticky (sorted by priority, the query
    # would walk every free camera of the tenant looking for them).
    sticky = free.where(CameraLease.last_worker_pk == worker_pk).order_by(None)
    lease = await session.scalar(sticky.order_by(CameraLease.camera_id))
    if lease is None:
        lease = await session.scalar(free)
    if lease is None:
        return None
    new_epoch = lease.epoch + 1
    # The guard on worker_pk IS NULL makes the claim a compare-and-set even if a row lock
    # was not taken (SQLite serializes whole transactions instead).
    result = await session.execute(
        update(CameraLease)
        .where(CameraLease.camera_id == lease.camera_id, CameraLease.worker_pk.is_(None))
        .values(
            worker_pk=worker_pk,
            epoch=new_epoch,
            assigned_at=now,
            last_worker_pk=worker_pk,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    camera = await session.get_one(Camera, lease.camera_id)
    return camera, new_epoch


async def release(
    session: AsyncSession,
    camera_id: int,
    worker_pk: int,
    epoch: int | None,
    now: datetime,
    *,
    hold_until: datetime | None = None,
) -> bool:
    """Release one lease if this worker holds it (at this epoch, when given).

    ``hold_until``: when the release is the control plane's decision and not the worker's,
    the time until which the worker may still believe its lease valid (its deadline); the
    camera is not assigned to anyone else before then.
    """
    conditions = [CameraLease.camera_id == camera_id, CameraLease.worker_pk == worker_pk]
    if epoch is not None:
        conditions.append(CameraLease.epoch == epoch)
    result = await session.execute(
        update(CameraLease)
        .where(and_(*conditions))
        .values(worker_pk=None, waiting_since=now, revoked_until=hold_until)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


async def release_all(
    session: AsyncSession, worker_pk: int, now: datetime, *, hold_until: datetime | None = None
) -> list[HeldLease]:
    """Release every lease of a worker (``hold_until`` as in ``release``)."""
    held = await held_by(session, worker_pk)
    if held:
        await session.execute(
            update(CameraLease)
            .where(CameraLease.worker_pk == worker_pk)
            .values(worker_pk=None, waiting_since=now, revoked_until=hold_until)
            .execution_options(synchronize_session=False)
        )
    return held


async def lease_of(session: AsyncSession, camera_id: int) -> CameraLease | None:
    return await session.scalar(select(CameraLease).where(CameraLease.camera_id == camera_id))


async def lease_in_tenant(
    session: AsyncSession, tenant_id: str, camera_id: int
) -> CameraLease | None:
    """The lease row of a camera of this tenant (None for another tenant's camera)."""
    return await session.scalar(
        select(CameraLease)
        .join(Camera, Camera.id == CameraLease.camera_id)
        .where(CameraLease.camera_id == camera_id, Camera.tenant_id == tenant_id)
    )


async def held_with_cameras(
    session: AsyncSession, worker_pk: int
) -> list[tuple[Camera, CameraLease]]:
    rows = await session.execute(
        select(Camera, CameraLease)
        .join(CameraLease, CameraLease.camera_id == Camera.id)
        .where(CameraLease.worker_pk == worker_pk)
        .order_by(Camera.id)
    )
    return [(camera, lease) for camera, lease in rows]

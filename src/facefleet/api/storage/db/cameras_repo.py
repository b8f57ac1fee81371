"""Cameras, their required labels and their lease rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import Camera, CameraLease, CameraRequiredLabel, Worker


async def add(session: AsyncSession, camera: Camera, labels: Sequence[str]) -> None:
    session.add(camera)
    await session.flush()
    session.add(
        CameraLease(
            camera_id=camera.id,
            tenant_id=camera.tenant_id,
            priority=camera.priority,
            enabled=camera.enabled,
        )
    )
    await set_labels(session, camera.id, labels)


async def set_labels(session: AsyncSession, camera_id: int, labels: Sequence[str]) -> None:
    await session.execute(
        delete(CameraRequiredLabel).where(CameraRequiredLabel.camera_id == camera_id)
    )
    session.add_all(CameraRequiredLabel(camera_id=camera_id, label=lbl) for lbl in set(labels))
    await session.flush()


async def get(session: AsyncSession, tenant_id: str, camera_id: int) -> Camera | None:
    return await session.scalar(
        select(Camera).where(Camera.tenant_id == tenant_id, Camera.id == camera_id)
    )


async def name_taken(
    session: AsyncSession, tenant_id: str, name: str, except_id: int | None = None
) -> bool:
    query = select(Camera.id).where(Camera.tenant_id == tenant_id, Camera.name == name)
    if except_id is not None:
        query = query.where(Camera.id != except_id)
    return (await session.scalar(query)) is not None


async def page(
    session: AsyncSession, tenant_id: str, offset: int, limit: int
) -> tuple[list[Camera], int]:
    total = await session.scalar(
        select(func.count()).select_from(Camera).where(Camera.tenant_id == tenant_id)
    )
    rows = await session.scalars(
        select(Camera)
        .where(Camera.tenant_id == tenant_id)
        .order_by(Camera.id)
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all()), int(total or 0)


async def labels_for(session: AsyncSession, camera_ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {cid: [] for cid in camera_ids}
    if not camera_ids:
        return out
    rows = await session.execute(
        select(CameraRequiredLabel.camera_id, CameraRequiredLabel.label)
        .where(CameraRequiredLabel.camera_id.in_(camera_ids))
        .order_by(CameraRequiredLabel.label)
    )
    for camera_id, label in rows:
        out[camera_id].append(label)
    return out


async def leases_for(
    session: AsyncSession, camera_ids: Sequence[int]
) -> dict[int, tuple[CameraLease, str | None]]:
    """Each camera's lease row and the worker_id of its holder."""
    if not camera_ids:
        return {}
    rows = await session.execute(
        select(CameraLease, Worker.worker_id)
        .outerjoin(Worker, Worker.id == CameraLease.worker_pk)
        .where(CameraLease.camera_id.in_(camera_ids))
    )
    return {lease.camera_id: (lease, worker_id) for lease, worker_id in rows}


async def delete_camera(session: AsyncSession, camera: Camera) -> None:
    await session.delete(camera)
    await session.flush()


async def counts(session: AsyncSession, tenant_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(Camera.enabled, CameraLease.worker_pk.is_not(None), func.count())
        .join(CameraLease, CameraLease.camera_id == Camera.id)
        .where(Camera.tenant_id == tenant_id)
        .group_by(Camera.enabled, CameraLease.worker_pk.is_not(None))
    )
    out = {"assigned": 0, "unassigned": 0, "disabled": 0}
    for enabled, held, count in rows:
        if held:
            out["assigned"] += count
        elif enabled:
            out["unassigned"] += count
        else:
            out["disabled"] += count
    return out


async def fleet_counts(session: AsyncSession, now: datetime) -> dict[str, dict[str, int]]:
    """Per tenant: enabled and disabled cameras, and unheld ones that are failing."""
    failing = CameraLease.worker_pk.is_(None) & (
        (CameraLease.failures > 0) | (CameraLease.backoff_until > now)
    )
    rows = await session.execute(
        select(Camera.tenant_id, Camera.enabled, failing, func.count())
        .join(CameraLease, CameraLease.camera_id == Camera.id)
        .group_by(Camera.tenant_id, Camera.enabled, failing)
    )
    out: dict[str, dict[str, int]] = {}
    for tenant_id, enabled, is_failing, count in rows:
        counts = out.setdefault(tenant_id, {"enabled": 0, "disabled": 0, "failing": 0})
        if not enabled:
            counts["disabled"] += count
            continue
        counts["enabled"] += count
        if is_failing:
            counts["failing"] += count
    return out


async def leases_with_holders(
    session: AsyncSession, camera_ids: Sequence[int]
) -> list[tuple[Camera, CameraLease, str | None]]:
    if not camera_ids:
        return []
    rows = await session.execute(
        select(Camera, CameraLease, Worker.worker_id)
        .join(CameraLease, CameraLease.camera_id == Camera.id)
        .outerjoin(Worker, Worker.id == CameraLease.worker_pk)
        .where(Camera.id.in_(list(camera_ids)))
    )
    return [(camera, lease, holder) for camera, lease, holder in rows]


async def clear_failures(session: AsyncSession, camera_ids: Sequence[int]) -> None:
    """Cameras that stream again start their failure count over."""
    if camera_ids:
        await session.execute(
            update(CameraLease)
            .where(CameraLease.camera_id.in_(list(camera_ids)), CameraLease.failures > 0)
            .values(failures=0, last_error=None, backoff_until=None)
            .execution_options(synchronize_session=False)
        )


async def sync_lease(session: AsyncSession, camera: Camera) -> None:
    """Copy what the choice of a free camera sorts and filters on to its lease row."""
    await session.execute(
        update(CameraLease)
        .where(CameraLease.camera_id == camera.id)
        .values(priority=camera.priority, enabled=camera.enabled)
        .execution_options(synchronize_session=False)
    )

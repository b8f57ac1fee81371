"""Taking a camera away from a worker that may still be streaming it.

The worker must stop hearing that the lease is valid before anyone else can get the camera,
so, inside the worker's row lock: the lease leaves the hot store first (its next heartbeat
says so), then the database releases it with a hold until the worker's deadline (by which it
has heard, or fenced itself). If the commit then fails, the hot store shows less than the
database, which is safe, and the anti-entropy pass gives the lease back.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.clock import to_datetime
from facefleet.api.state import AppState
from facefleet.api.storage.db import events_repo, leases_repo
from facefleet.api.storage.hot.base import LiveWorker


async def revoke(
    state: AppState,
    session: AsyncSession,
    worker: LiveWorker,
    camera_id: int,
    epoch: int,
    reason: str,
) -> bool:
    """In the caller's transaction (the caller commits, then publishes the release); True if
    the worker held the camera at that epoch."""
    if await leases_repo.lock_worker(session, worker.pk) is None:
        return False
    now = state.clock()
    await state.hot.drop_lease(worker.tenant_id, worker.worker_id, camera_id, now=now)
    hold = to_datetime(max(now, worker.deadline)) if worker.is_live else None
    released = await leases_repo.release(
        session, camera_id, worker.pk, epoch, to_datetime(now), hold_until=hold
    )
    if released:
        events_repo.record(
            session,
            worker.tenant_id,
            worker.pk,
            "camera_released",
            camera_id=camera_id,
            epoch=epoch,
            reason=reason,
        )
    return released

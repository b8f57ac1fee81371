"""The state a WebSocket client starts from: workers, cameras with their leases, stats."""

from __future__ import annotations

from typing import Any

from facefleet.api.cameras.service import CameraService
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.unit_of_work import UnitOfWork
from facefleet.api.workers.queries import WorkerQueries

MAX_SNAPSHOT_CAMERAS = 10_000


async def build_snapshot(state: AppState, principal: Principal) -> dict[str, Any]:
    async with state.sessions() as session:
        uow = UnitOfWork(session)
        queries = WorkerQueries(state)
        workers = await queries.list(
            session, principal, status=None, label=None, offset=0, limit=1_000_000
        )
        cameras = await CameraService(state).page(uow, principal, 0, MAX_SNAPSHOT_CAMERAS)
        stats = await queries.stats(session, principal)
        await session.rollback()
    return {
        "workers": [w.model_dump(mode="json") for w in workers.items],
        "cameras": [c.model_dump(mode="json") for c in cameras.items],
        "stats": stats.model_dump(mode="json"),
    }

"""The state a WebSocket client starts from: workers, cameras with their leases, stats.

Clients of one tenant that connect together (a dashboard reload, a reconnect storm after
a deploy) share one snapshot: it is built once per tenant at a time and reused while no
event has happened since, so a hundred clients cost one set of queries, not a hundred.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from facefleet.api.cameras.service import CameraService
from facefleet.api.events.snapshot_cache import Built
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.storage.db import cameras_repo
from facefleet.api.unit_of_work import UnitOfWork
from facefleet.api.workers.queries import WorkerQueries
from facefleet.protocol.enums import WorkerStatus

MAX_SNAPSHOT_CAMERAS = 10_000


async def build_snapshot(state: AppState, principal: Principal) -> dict[str, Any]:
    tenant_id = principal.tenant_id
    cache = state.snapshots
    async with cache.locks.setdefault(tenant_id, asyncio.Lock()):
        seq = await state.events.current_seq(tenant_id)
        data = cache.fresh(tenant_id, seq)
        if data is None:
            data = await _query(state, principal)
            cache.built[tenant_id] = Built(seq, time.monotonic(), data)
        return data


async def _query(state: AppState, principal: Principal) -> dict[str, Any]:
    queries = WorkerQueries(state)
    async with state.reads() as session:
        workers = await queries.list(
            session, principal, status=None, label=None, offset=0, limit=1_000_000
        )
        cameras = await CameraService(state).page(
            UnitOfWork(session), principal, 0, MAX_SNAPSHOT_CAMERAS
        )
        camera_counts = await cameras_repo.counts(session, principal.tenant_id)
        await session.rollback()
    by_status = Counter(w.status.value for w in workers.items)
    return {
        "workers": [w.model_dump(mode="json") for w in workers.items],
        "cameras": [c.model_dump(mode="json") for c in cameras.items],
        "stats": {
            "workers": {s.value: by_status.get(s.value, 0) for s in WorkerStatus},
            "cameras": camera_counts,
            "heartbeats_per_second": await state.hot.heartbeat_rate(now=state.clock()),
        },
    }

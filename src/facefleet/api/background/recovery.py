"""Recovery: rebuild the hot store from the database, granting every worker that was live
one lease TTL to heartbeat again before the reaper may declare it offline. Runs at start-up,
and again when a shared hot store lost its contents (a Redis restarted empty)."""

from __future__ import annotations

from facefleet.api.clock import to_datetime
from facefleet.api.state import AppState
from facefleet.api.storage.db import commands_repo, leases_repo, workers_repo
from facefleet.api.storage.db.commands_repo import delivery
from facefleet.api.storage.db.models import Command, Worker
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.protocol.enums import LIVE_STATUSES, WorkerStatus


def live_record(
    row: Worker, leases: dict[int, int], commands: list[Command], now: float, ttl: float
) -> LiveWorker:
    """A worker's hot record rebuilt from its row, with one lease TTL of grace."""
    status = WorkerStatus(row.status)
    return LiveWorker(
        pk=row.id,
        tenant_id=row.tenant_id,
        worker_id=row.worker_id,
        session_hash=row.session_hash,
        hostname=row.hostname,
        instance_id=row.instance_id,
        capacity=row.capacity,
        labels=list(row.labels),
        status=WorkerStatus.online if status == WorkerStatus.suspect else status,
        desired_state=row.desired_state,
        last_seen=now,
        deadline=now + ttl,
        leases=leases,
        commands={c.id: delivery(c) for c in commands},
    )


async def rebuild_hot_store(state: AppState) -> int:
    now = state.clock()
    restored = 0
    async with state.sessions() as session:
        rows = await workers_repo.with_status(session, [s.value for s in LIVE_STATUSES])
        for row in rows:
            if await state.hot.get_worker(row.tenant_id, row.worker_id) is not None:
                continue  # a shared hot store already knows it
            held = await leases_repo.held_by(session, row.id)
            commands = await commands_repo.deliverable(session, row.id, to_datetime(now))
            leases = {h.camera_id: h.epoch for h in held}
            record = live_record(row, leases, commands, now, state.settings.lease_ttl)
            # Never over a record a registration wrote meanwhile.
            restored += await state.hot.restore_worker(record)
        await session.commit()
    await state.hot.mark_restored()
    return restored

"""Anti-entropy: the hot store brought back in line with the database, which owns leases.

A change the database committed reaches the hot store after the commit; when that write
fails (Redis away for a moment), or finds no record, the two disagree: a camera held in the
database but in no heartbeat response would never be processed, and a lease the hot store
keeps after the database released it would be renewed for nothing. Each replica repairs the
workers whose write-through it saw fail; the leader compares everything every
``anti_entropy_every`` reaper passes and repairs what differs.

A repair locks the worker's row, as every change of its leases and commands does, so it
never interleaves with one: it reads the database and writes the hot store inside that lock.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.background.recovery import live_record
from facefleet.api.clock import to_datetime
from facefleet.api.state import AppState
from facefleet.api.storage.db import commands_repo, leases_repo, workers_repo
from facefleet.api.storage.db.commands_repo import delivery
from facefleet.api.storage.db.models import CameraLease, Command, Worker
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.api.unit_of_work import WorkerRef
from facefleet.protocol.enums import LIVE_STATUSES, WorkerStatus

log = logging.getLogger(__name__)

# Operator decisions the database holds and the hot store must show.
_STEERED = {"drain": WorkerStatus.draining, "stop": WorkerStatus.stopping}


async def repair(state: AppState, tenant_id: str, worker_id: str) -> bool:
    """Make the worker's hot record say what the database says; True if it changed."""
    hot, now = state.hot, state.clock()
    async with state.sessions() as session:
        row = await workers_repo.get_for_update(session, tenant_id, worker_id)
        live = await hot.get_worker(tenant_id, worker_id)
        changed = await _repair_locked(state, session, row, live, now)
        await session.commit()
    if changed:
        state.metrics.repairs.inc()
        log.info("repaired the hot record of %s/%s", tenant_id, worker_id)
    return changed


async def _repair_locked(
    state: AppState, session: AsyncSession, row: Worker | None, live: LiveWorker | None, now: float
) -> bool:
    hot = state.hot
    if row is None or row.status not in LIVE_STATUSES:
        # Gone or not live in the database: a live hot record of it is stale (an offline one
        # holding leases is the reaper's own retry queue, left to the reaper).
        if (
            live is not None
            and live.is_live
            and (row is None or row.session_hash == live.session_hash)
        ):
            await hot.remove_worker(live.tenant_id, live.worker_id)
            return True
        return False
    leases = {h.camera_id: h.epoch for h in await leases_repo.held_by(session, row.id)}
    commands = await commands_repo.deliverable(session, row.id, to_datetime(now))
    if live is None or live.session_hash != row.session_hash:
        # A registration (or a recovery) the hot store never received.
        await hot.put_worker(live_record(row, leases, commands, now, state.settings.lease_ttl))
        return True
    changed = False
    if live.leases != leases:
        await hot.set_leases(row.tenant_id, row.worker_id, leases, now=now)
        changed = True
    if set(live.commands) != {c.id for c in commands}:
        await hot.set_commands(row.tenant_id, row.worker_id, [delivery(c) for c in commands])
        changed = True
    steered = _STEERED.get(row.desired_state)
    if live.is_live and live.desired_state != row.desired_state:
        status = steered or (
            WorkerStatus.online if live.status in _STEERED.values() else live.status
        )
        await hot.set_status(row.tenant_id, row.worker_id, status, row.desired_state)
        changed = True
    return changed


async def repair_pending(state: AppState) -> int:
    """Repair the workers whose write-through this replica saw fail."""
    pending, state.repairs = state.repairs, set()
    repaired = 0
    for tenant_id, worker_id in sorted(pending):
        try:
            repaired += await repair(state, tenant_id, worker_id)
        except Exception:
            state.repairs.add((tenant_id, worker_id))
            raise
    return repaired


async def differing(state: AppState) -> set[WorkerRef]:
    """Workers whose hot record differs from the database (read without locks: candidates,
    each then repaired under its lock)."""
    async with state.reads() as session:
        rows = (
            await session.execute(
                select(
                    Worker.id,
                    Worker.tenant_id,
                    Worker.worker_id,
                    Worker.status,
                    Worker.session_hash,
                    Worker.desired_state,
                )
            )
        ).all()
        lease_rows = (
            await session.execute(
                select(CameraLease.worker_pk, CameraLease.camera_id, CameraLease.epoch).where(
                    CameraLease.worker_pk.is_not(None)
                )
            )
        ).all()
        open_rows = (
            await session.execute(
                select(Command.worker_pk, Command.id).where(
                    Command.status.in_(commands_repo.OPEN),
                    Command.expires_at > to_datetime(state.clock()),
                )
            )
        ).all()
        await session.commit()
    leases: dict[int, dict[int, int]] = defaultdict(dict)
    for worker_pk, camera_id, epoch in lease_rows:
        if worker_pk is not None:
            leases[worker_pk][camera_id] = epoch
    open_commands: dict[int, set[int]] = defaultdict(set)
    for worker_pk, command_id in open_rows:
        open_commands[worker_pk].add(command_id)
    hot = {(w.tenant_id, w.worker_id): w for w in await state.hot.list_workers()}
    out: set[WorkerRef] = set()
    for pk, tenant_id, worker_id, status, session_hash, desired in rows:
        ref = (tenant_id, worker_id)
        live = hot.pop(ref, None)
        if status not in LIVE_STATUSES:
            if live is not None and live.is_live and live.session_hash == session_hash:
                out.add(ref)
            continue
        if (
            live is None
            or live.session_hash != session_hash
            or (
                live.is_live
                and (live.leases != leases.get(pk, {}) or live.desired_state != desired)
            )
        ):
            out.add(ref)
        elif open_commands.get(pk):
            with_commands = await state.hot.get_worker(tenant_id, worker_id)
            if with_commands is not None and set(with_commands.commands) != open_commands[pk]:
                out.add(ref)
    return out


async def full_pass(state: AppState) -> int:
    """Compare everything and repair what differs; the number of workers repaired."""
    repaired = 0
    for tenant_id, worker_id in sorted(await differing(state)):
        repaired += await repair(state, tenant_id, worker_id)
    return repaired

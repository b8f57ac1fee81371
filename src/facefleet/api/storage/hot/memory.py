"""In-process hot store for the embedded single-replica mode.

Every method runs without awaiting anything, so each is atomic on the event loop.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from facefleet.api.storage.hot.base import (
    DirtyLiveness,
    HeartbeatOutcome,
    LiveWorker,
    SessionMismatch,
    SweepResult,
    next_generation,
    worker_key,
)
from facefleet.protocol.enums import LIVE_STATUSES, WorkerStatus

_RATE_BUCKETS = 64


def _copy(worker: LiveWorker, *, with_commands: bool = False) -> LiveWorker:
    """A copy callers may change freely: the mutable fields are copied, not shared. Only
    ``get_worker`` and heartbeats hand out the commands (listings do not carry them).

    Every heartbeat makes one: a field-by-field copy of the instance dict costs a third of
    ``dataclasses.replace``, which re-runs ``__init__``, and a tiny part of ``copy.deepcopy``."""
    twin = object.__new__(LiveWorker)
    twin.__dict__.update(worker.__dict__)
    twin.labels = list(worker.labels)
    twin.leases = dict(worker.leases)
    twin.metrics = dict(worker.metrics)
    twin.commands = dict(worker.commands) if with_commands else {}
    twin.streams = list(worker.streams)
    return twin


# Rate-limit buckets kept at most (two per API key in use).
_MAX_BUCKETS = 100_000


class MemoryHotStore:
    def __init__(self) -> None:
        self._workers: dict[str, LiveWorker] = {}
        self._dirty: set[str] = set()
        self._delivered: set[int] = set()
        # (second, count) buckets for the heartbeat rate.
        self._rate: deque[list[int]] = deque(maxlen=_RATE_BUCKETS)
        self._touched: dict[str, dict[str, dict[str, Any] | None]] = {}
        self._restored = False
        # Rate-limit buckets: name -> (tokens, when last filled).
        self._buckets: dict[str, tuple[float, float]] = {}

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def put_worker(self, worker: LiveWorker) -> int:
        previous = self._workers.get(worker.key)
        record = _copy(worker, with_commands=True)
        record.generation = max(
            worker.generation,
            next_generation(previous.generation if previous is not None else 0, worker.last_seen),
        )
        self._workers[worker.key] = record
        return record.generation

    async def restore_worker(self, worker: LiveWorker) -> bool:
        if worker.key in self._workers:
            return False
        await self.put_worker(worker)
        return True

    async def get_worker(self, tenant_id: str, worker_id: str) -> LiveWorker | None:
        worker = self._workers.get(worker_key(tenant_id, worker_id))
        return _copy(worker, with_commands=True) if worker else None

    async def list_workers(self, tenant_id: str | None = None) -> list[LiveWorker]:
        return [
            _copy(w)
            for w in self._workers.values()
            if tenant_id is None or w.tenant_id == tenant_id
        ]

    async def remove_worker(
        self, tenant_id: str, worker_id: str, *, only_if_offline: bool = False
    ) -> None:
        key = worker_key(tenant_id, worker_id)
        worker = self._workers.get(key)
        if only_if_offline and worker is not None and worker.status != WorkerStatus.offline:
            return
        self._workers.pop(key, None)
        self._dirty.discard(key)

    async def heartbeat(
        self,
        tenant_id: str,
        worker_id: str,
        *,
        now: float,
        ttl: float,
        metrics: dict[str, Any] | None,
        streams: list[dict[str, Any]] | None = None,
        session_hash: str | None = None,
    ) -> HeartbeatOutcome | None:
        key = worker_key(tenant_id, worker_id)
        worker = self._workers.get(key)
        if worker is None or worker.status not in LIVE_STATUSES:
            return None
        if session_hash is not None and session_hash != worker.session_hash:
            raise SessionMismatch(worker_id)
        recovered = worker.status == WorkerStatus.suspect
        if recovered:
            worker.status = WorkerStatus.online
        worker.last_seen = now
        worker.deadline = max(worker.deadline, now + ttl)
        worker.presence_deadline = None  # it speaks: whatever its channel does, it lives
        if metrics is not None:
            worker.metrics = metrics
        if streams is not None:
            worker.streams = streams
        self._dirty.add(key)
        self._touched.setdefault(tenant_id, {})[worker_id] = metrics
        self._count(now)
        self._delivered.update(worker.commands)
        return HeartbeatOutcome(_copy(worker, with_commands=True), recovered)

    def _count(self, now: float) -> None:
        second = math.floor(now)
        if self._rate and self._rate[-1][0] == second:
            self._rate[-1][1] += 1
        else:
            self._rate.append([second, 1])

    async def presence_open(
        self, tenant_id: str, worker_id: str, token: str, *, now: float
    ) -> bool:
        worker = self._workers.get(worker_key(tenant_id, worker_id))
        if worker is None or not worker.is_live:
            return False
        worker.presence = token
        worker.presence_deadline = None
        return True

    async def presence_lost(
        self, tenant_id: str, worker_id: str, token: str, *, now: float, grace: float
    ) -> bool:
        worker = self._workers.get(worker_key(tenant_id, worker_id))
        if worker is None or not worker.is_live or worker.presence != token:
            return False
        worker.presence_deadline = now + grace
        return True

    async def set_status(
        self,
        tenant_id: str,
        worker_id: str,
        status: WorkerStatus,
        desired_state: str | None = None,
        *,
        stop_deadline: float | None = None,
        stop_mode: str | None = None,
    ) -> LiveWorker | None:
        worker = self._workers.get(worker_key(tenant_id, worker_id))
        if worker is None:
            return None
        worker.status = status
        if desired_state is not None:
            worker.desired_state = desired_state
        if stop_deadline is not None:
            worker.stop_deadline = stop_deadline
            worker.stop_mode = stop_mode
        self._dirty.add(worker.key)
        return _copy(worker)

    def _set_leases(
        self, tenant_id: str, worker_id: str, leases: dict[int, int], now: float
    ) -> int | None:
        worker = self._workers.get(worker_key(tenant_id, worker_id))
        if worker is None:
            return None
        if leases != worker.leases:
            worker.leases = leases
            worker.generation = next_generation(worker.generation, now)
        return worker.generation

    def _leases_of(self, tenant_id: str, worker_id: str) -> dict[int, int]:
        worker = self._workers.get(worker_key(tenant_id, worker_id))
        return dict(worker.leases) if worker is not None else {}

    async def add_lease(
        self, tenant_id: str, worker_id: str, camera_id: int, epoch: int, *, now: float
    ) -> int | None:
        leases = self._leases_of(tenant_id, worker_id)
        leases[camera_id] = epoch
        return self._set_leases(tenant_id, worker_id, leases, now)

    async def drop_lease(
        self, tenant_id: str, worker_id: str, camera_id: int, *, now: float
    ) -> int | None:
        leases = self._leases_of(tenant_id, worker_id)
        leases.pop(camera_id, None)
        return self._set_leases(tenant_id, worker_id, leases, now)

    async def set_leases(
        self, tenant_id: str, worker_id: str, leases: dict[int, int], *, now: float
    ) -> int | None:
        return self._set_leases(tenant_id, worker_id, dict(leases), now)

    async def add_command(self, tenant_id: str, worker_id: str, item: dict[str, Any]) -> bool:
        worker = self._workers.get(worker_key(tenant_id, worker_id))
        if worker is None:
            return False
        worker.commands[int(item["id"])] = dict(item)
        return True

    async def remove_command(self, tenant_id: str, worker_id: str, command_id: int) -> None:
        worker = self._workers.get(worker_key(tenant_id, worker_id))
        if worker is not None:
            worker.commands.pop(command_id, None)

    async def set_commands(
        self, tenant_id: str, worker_id: str, items: list[dict[str, Any]]
    ) -> bool:
        worker = self._workers.get(worker_key(tenant_id, worker_id))
        if worker is None:
            return False
        worker.commands = {int(item["id"]): dict(item) for item in items}
        return True

    async def take_delivered(self) -> list[int]:
        delivered, self._delivered = sorted(self._delivered), set()
        return delivered

    async def sweep(
        self, *, now: float, suspect_after: float, tenant_id: str | None = None
    ) -> SweepResult:
        suspect: list[LiveWorker] = []
        expired: list[LiveWorker] = []
        expired_from: dict[str, WorkerStatus] = {}
        for worker in self._workers.values():
            if worker.status not in LIVE_STATUSES:
                continue
            if tenant_id is not None and worker.tenant_id != tenant_id:
                continue
            if worker.is_expired(now):
                expired_from[worker.key] = worker.status
                worker.status = WorkerStatus.offline
                self._dirty.add(worker.key)
                expired.append(_copy(worker))
            elif worker.status == WorkerStatus.online and now - worker.last_seen >= suspect_after:
                worker.status = WorkerStatus.suspect
                self._dirty.add(worker.key)
                suspect.append(_copy(worker))
        return SweepResult(suspect, expired, expired_from)

    async def extend_grace(self, *, now: float, ttl: float) -> int:
        live = [w for w in self._workers.values() if w.status in LIVE_STATUSES]
        for worker in live:
            if worker.status == WorkerStatus.suspect:
                worker.status = WorkerStatus.online
            worker.last_seen = now
            worker.deadline = max(worker.deadline, now + ttl)
            worker.presence_deadline = None
            self._dirty.add(worker.key)
        return len(live)

    async def offline_with_leases(self) -> list[LiveWorker]:
        return [
            _copy(w)
            for w in self._workers.values()
            if w.status == WorkerStatus.offline and w.leases
        ]

    async def draining_with_leases(self) -> list[LiveWorker]:
        return [
            _copy(w)
            for w in self._workers.values()
            if w.status == WorkerStatus.draining and w.leases
        ]

    async def take_dirty(self) -> list[DirtyLiveness]:
        dirty = [
            DirtyLiveness(w.pk, w.last_seen, w.status, dict(w.metrics))
            for key in self._dirty
            if (w := self._workers.get(key)) is not None
        ]
        self._dirty.clear()
        return dirty

    async def take_touched(self) -> dict[str, dict[str, dict[str, Any] | None]]:
        touched, self._touched = self._touched, {}
        return touched

    async def heartbeat_rate(self, *, now: float, window: float = 10.0) -> float:
        start = math.floor(now - window)
        end = math.floor(now)
        total = sum(count for second, count in self._rate if start <= second < end)
        return total / window

    async def take_token(self, bucket: str, *, rate: float, burst: float, now: float) -> float:
        # The arithmetic of lua/take_token.lua, step for step.
        tokens, at = self._buckets.get(bucket, (burst, now))
        if now > at:
            tokens = min(burst, tokens + (now - at) * rate)
            at = now
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate
        if len(self._buckets) > _MAX_BUCKETS:
            self._buckets.clear()  # every bucket starts full again: generous, never stuck
        self._buckets[bucket] = (tokens, at)
        return wait

    async def is_restored(self) -> bool:
        return self._restored

    async def mark_restored(self) -> None:
        self._restored = True

"""Redis hot store: the liveness of the fleet shared by several control-plane replicas.

Every method is one atomic step on the server (a Lua script, a transaction or a single
command), so replicas racing on one worker never see or leave half an operation.

Times (``last_seen``, deadlines) are the callers' ``now``, never the Redis server clock,
so every replica, and a test's fake clock, judge deadlines the same way.

Keys, all under ``prefix``; a worker's *member* name is ``<tenant>/<worker>``:

- ``w:<member>``: the worker's record, a hash; each lease is a field ``lease:<camera_id>``
  holding the epoch;
- ``idx:<tenant>``: the tenant's worker ids; ``tenants``: the tenants with workers;
- ``due``: live workers by the time they expire (the lease deadline, or an earlier
  shutdown deadline); ``quiet``: online workers by their last heartbeat; ``offline`` and
  ``draining``: workers in those states. With these the reaper's passes cost what changes,
  not the size of the fleet;
- ``cmd:<member>``: the worker's commands not yet acknowledged, by id, handed out by every
  heartbeat until acknowledged; ``delivered``: ids handed out since the flusher took them;
- ``dirty``: records changed since the write-behind flusher last took them;
- ``touched`` and ``touched:<tenant>``: heartbeats since the stats digest last took them;
- ``rate:<second>``: heartbeats counted per second of the callers' clock;
- ``bucket:<name>``: a rate-limit token bucket (tokens, when last filled), gone once full;
- ``restored``: set once the database was replayed into the store; a Redis that restarts
  empty lacks it, which tells the reaper to replay the database again.

Expiry (in real time) keeps Redis bounded: a record expires ``record_ttl`` after its last
write, and every heartbeat writes it, so a live worker's record never expires while the
worker heartbeats; a record the reaper declared offline while it still holds leases is its
retry queue until the database released them, so it never expires either. Pending queues,
the dirty and touched sets and the rate buckets expire too. Index entries of a record that
expired are dropped when a sweep or a listing meets them.
"""

from __future__ import annotations

import json
import math
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from facefleet.api.storage import lua
from facefleet.api.storage.hot.base import (
    DirtyLiveness,
    HeartbeatOutcome,
    LiveWorker,
    SessionMismatch,
    SweepResult,
    worker_key,
)
from facefleet.protocol.enums import LIVE_STATUSES, WorkerStatus

DEFAULT_PREFIX = "facefleet:"
SOCKET_TIMEOUT = 2.0
# A rate bucket outlives any window heartbeat_rate is asked about.
RATE_BUCKET_TTL = 120.0
_LEASE = "lease:"


# One sweep changes at most this many workers of each kind (the rest wait for the next
# pass), so a fleet expiring at once never blocks Redis for long.
SWEEP_LIMIT = 1000
# Candidates for suspicion are taken this far past the bound; the exact comparison in the
# script decides, with the same floating-point arithmetic as the in-process store.
_SUSPECT_SLACK = 0.001


def connect(url: str) -> aioredis.Redis:
    """A client whose requests fail fast when Redis is away (the API answers 503 and the
    next request reconnects), retrying once only when a pooled connection turned out to be
    dead, never after a timeout (a script may have run)."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        health_check_interval=30,
    )
    return client


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _number(value: float) -> str:
    return repr(float(value))


def encode_worker(worker: LiveWorker) -> dict[str, str]:
    fields = {
        "pk": str(worker.pk),
        "tenant_id": worker.tenant_id,
        "worker_id": worker.worker_id,
        "session_hash": worker.session_hash,
        "hostname": worker.hostname,
        "instance_id": worker.instance_id,
        "capacity": str(worker.capacity),
        "labels": json.dumps(worker.labels),
        "status": worker.status.value,
        "desired_state": worker.desired_state,
        "last_seen": _number(worker.last_seen),
        "deadline": _number(worker.deadline),
        "metrics": json.dumps(worker.metrics),
        "streams": json.dumps(worker.streams),
        "generation": str(worker.generation),
    }
    if worker.stop_deadline is not None:
        fields["stop_deadline"] = _number(worker.stop_deadline)
    if worker.stop_mode is not None:
        fields["stop_mode"] = worker.stop_mode
    if worker.presence:
        fields["presence"] = worker.presence
    if worker.presence_deadline is not None:
        fields["presence_deadline"] = _number(worker.presence_deadline)
    for camera_id, epoch in worker.leases.items():
        fields[f"{_LEASE}{camera_id}"] = str(epoch)
    return fields


def decode_worker(fields: dict[str, str], commands: list[str] | None = None) -> LiveWorker:
    """A record (and, when given, its flat id/item list of commands)."""
    stop_deadline = fields.get("stop_deadline")
    return LiveWorker(
        pk=int(fields["pk"]),
        tenant_id=fields["tenant_id"],
        worker_id=fields["worker_id"],
        session_hash=fields["session_hash"],
        hostname=fields["hostname"],
        instance_id=fields["instance_id"],
        capacity=int(fields["capacity"]),
        labels=json.loads(fields["labels"]),
        status=WorkerStatus(fields["status"]),
        desired_state=fields["desired_state"],
        last_seen=float(fields["last_seen"]),
        deadline=float(fields["deadline"]),
        leases={
            int(name.removeprefix(_LEASE)): int(value)
            for name, value in fields.items()
            if name.startswith(_LEASE)
        },
        metrics=json.loads(fields["metrics"]),
        stop_deadline=None if stop_deadline is None else float(stop_deadline),
        stop_mode=fields.get("stop_mode"),
        generation=int(fields.get("generation", "0")),
        presence=fields.get("presence", ""),
        presence_deadline=(
            None if "presence_deadline" not in fields else float(fields["presence_deadline"])
        ),
        commands={int(k): json.loads(v) for k, v in _pairs(commands or []).items()},
        streams=json.loads(fields.get("streams", "[]")),
    )


def _by_pk(workers: list[LiveWorker]) -> list[LiveWorker]:
    # Registration order, as the in-process store lists them.
    return sorted(workers, key=lambda w: w.pk)


class RedisHotStore:
    def __init__(
        self, client: aioredis.Redis, *, prefix: str = DEFAULT_PREFIX, record_ttl: float = 60.0
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._record_ms = str(max(1, round(record_ttl * 1000)))
        self._rate_ms = str(round(RATE_BUCKET_TTL * 1000))

        live = ", ".join(f"{status.value} = true" for status in sorted(LIVE_STATUSES))
        prelude = f"local LIVE = {{{live}}}\n" + lua.script(__package__ or "", "prelude")

        def script(name: str) -> Any:
            return client.register_script(prelude + lua.script(__package__ or "", name))

        self._put = script("put")
        self._remove = script("remove")
        self._heartbeat = script("heartbeat")
        self._set_status = script("set_status")
        self._leases = script("leases")
        self._commands = script("commands")
        self._take_delivered = script("take_delivered")
        self._presence = script("presence")
        self._sweep = script("sweep")
        self._list = script("list")
        self._extend_grace = script("extend_grace")
        self._list_holding = script("list_holding")
        self._take_dirty = script("take_dirty")
        self._take_touched = script("take_touched")
        self._take_token = script("take_token")

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, record_ttl: float = 60.0
    ) -> RedisHotStore:
        return cls(connect(url), prefix=prefix, record_ttl=record_ttl)

    def _one(self, tenant_id: str, worker_id: str, *args: str) -> list[str]:
        """The arguments of a script about one worker."""
        return [self.prefix, worker_key(tenant_id, worker_id), self._record_ms, *args]

    # -- lifecycle ------------------------------------------------------------------------

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()

    # -- records --------------------------------------------------------------------------

    async def _store(self, worker: LiveWorker, *, only_if_absent: bool) -> int:
        flat = [item for pair in encode_worker(worker).items() for item in pair]
        commands = [
            part for cid, item in worker.commands.items() for part in (str(cid), json.dumps(item))
        ]
        generation = await self._put(
            args=self._one(
                worker.tenant_id,
                worker.worker_id,
                "1" if only_if_absent else "0",
                worker.worker_id,
                worker.tenant_id,
                _number(worker.last_seen),
                str(len(worker.commands)),
                *commands,
                *flat,
            )
        )
        return int(generation)

    async def put_worker(self, worker: LiveWorker) -> int:
        return await self._store(worker, only_if_absent=False)

    async def restore_worker(self, worker: LiveWorker) -> bool:
        return bool(await self._store(worker, only_if_absent=True))

    async def get_worker(self, tenant_id: str, worker_id: str) -> LiveWorker | None:
        member = worker_key(tenant_id, worker_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(f"{self.prefix}w:{member}")
            pipe.hgetall(f"{self.prefix}cmd:{member}")
            fields, commands = await pipe.execute()
        if not fields:
            return None
        flat = [part for pair in cast("dict[str, str]", commands).items() for part in pair]
        return decode_worker(cast("dict[str, str]", fields), flat)

    async def list_workers(self, tenant_id: str | None = None) -> list[LiveWorker]:
        rows = await self._list(args=[self.prefix, tenant_id or ""])
        return _by_pk([decode_worker(_pairs(row)) for row in rows])

    async def remove_worker(
        self, tenant_id: str, worker_id: str, *, only_if_offline: bool = False
    ) -> None:
        await self._remove(args=self._one(tenant_id, worker_id, "1" if only_if_offline else "0"))

    # -- liveness -------------------------------------------------------------------------

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
        result = await self._heartbeat(
            args=self._one(
                tenant_id,
                worker_id,
                _number(now),
                _number(ttl),
                "0" if metrics is None else "1",
                "" if metrics is None else json.dumps(metrics),
                session_hash or "",
                self._rate_ms,
                str(math.floor(now)),
                "0" if streams is None else "1",
                "" if streams is None else json.dumps(streams),
            )
        )
        if result is None:
            return None
        if result == "mismatch":
            raise SessionMismatch(worker_id)
        recovered, flat, commands = result
        return HeartbeatOutcome(decode_worker(_pairs(flat), commands), recovered == "1")

    async def presence_open(
        self, tenant_id: str, worker_id: str, token: str, *, now: float
    ) -> bool:
        return bool(await self._presence(args=self._one(tenant_id, worker_id, "open", token)))

    async def presence_lost(
        self, tenant_id: str, worker_id: str, token: str, *, now: float, grace: float
    ) -> bool:
        args = self._one(tenant_id, worker_id, "lost", token, _number(now + grace))
        return bool(await self._presence(args=args))

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
        flat = await self._set_status(
            args=self._one(
                tenant_id,
                worker_id,
                status.value,
                desired_state or "",
                "0" if stop_deadline is None else "1",
                "" if stop_deadline is None else _number(stop_deadline),
                "0" if stop_mode is None else "1",
                stop_mode or "",
            )
        )
        return decode_worker(_pairs(flat)) if flat else None

    async def _change_leases(
        self, tenant_id: str, worker_id: str, now: float, mode: str, *args: str
    ) -> int | None:
        generation = await self._leases(
            args=self._one(tenant_id, worker_id, _number(now), mode, *args)
        )
        return None if generation is None else int(generation)

    async def add_lease(
        self, tenant_id: str, worker_id: str, camera_id: int, epoch: int, *, now: float
    ) -> int | None:
        return await self._change_leases(
            tenant_id, worker_id, now, "add", str(camera_id), str(epoch)
        )

    async def drop_lease(
        self, tenant_id: str, worker_id: str, camera_id: int, *, now: float
    ) -> int | None:
        return await self._change_leases(tenant_id, worker_id, now, "drop", str(camera_id))

    async def set_leases(
        self, tenant_id: str, worker_id: str, leases: dict[int, int], *, now: float
    ) -> int | None:
        pairs = [part for cid, epoch in leases.items() for part in (str(cid), str(epoch))]
        return await self._change_leases(tenant_id, worker_id, now, "set", *pairs)

    async def add_command(self, tenant_id: str, worker_id: str, item: dict[str, Any]) -> bool:
        args = self._one(tenant_id, worker_id, "add", str(int(item["id"])), json.dumps(item))
        return bool(await self._commands(args=args))

    async def remove_command(self, tenant_id: str, worker_id: str, command_id: int) -> None:
        await self._commands(args=self._one(tenant_id, worker_id, "remove", str(command_id)))

    async def set_commands(
        self, tenant_id: str, worker_id: str, items: list[dict[str, Any]]
    ) -> bool:
        pairs = [part for item in items for part in (str(int(item["id"])), json.dumps(item))]
        return bool(await self._commands(args=self._one(tenant_id, worker_id, "set", *pairs)))

    async def take_delivered(self) -> list[int]:
        ids = await self._take_delivered(args=[self.prefix])
        return sorted(int(i) for i in ids)

    async def sweep(
        self, *, now: float, suspect_after: float, tenant_id: str | None = None
    ) -> SweepResult:
        rows = await self._sweep(
            args=[
                self.prefix,
                _number(now),
                _number(suspect_after),
                self._record_ms,
                _number(_SUSPECT_SLACK),
                str(SWEEP_LIMIT),
                "" if tenant_id is None else worker_key(tenant_id, ""),
            ]
        )
        suspect: list[LiveWorker] = []
        expired: list[LiveWorker] = []
        expired_from: dict[str, WorkerStatus] = {}
        for kind, previous, flat in rows:
            worker = decode_worker(_pairs(flat))
            if kind == "expired":
                expired.append(worker)
                expired_from[worker.key] = WorkerStatus(previous)
            else:
                suspect.append(worker)
        return SweepResult(_by_pk(suspect), _by_pk(expired), expired_from)

    async def extend_grace(self, *, now: float, ttl: float) -> int:
        count = await self._extend_grace(
            args=[self.prefix, self._record_ms, _number(now), _number(ttl)]
        )
        return int(count)

    async def _holding(self, index: str) -> list[LiveWorker]:
        rows = await self._list_holding(args=[self.prefix, self._record_ms, index])
        return _by_pk([decode_worker(_pairs(row)) for row in rows])

    async def offline_with_leases(self) -> list[LiveWorker]:
        return await self._holding(WorkerStatus.offline.value)

    async def draining_with_leases(self) -> list[LiveWorker]:
        return await self._holding(WorkerStatus.draining.value)

    async def take_dirty(self) -> list[DirtyLiveness]:
        rows = await self._take_dirty(args=[self.prefix])
        return [
            DirtyLiveness(int(pk), float(last_seen), WorkerStatus(status), json.loads(metrics))
            for pk, last_seen, status, metrics in rows
        ]

    async def take_touched(self) -> dict[str, dict[str, dict[str, Any] | None]]:
        rows = await self._take_touched(args=[self.prefix])
        return {
            tenant_id: {
                worker_id: json.loads(metrics) if metrics else None
                for worker_id, metrics in _pairs(flat).items()
            }
            for tenant_id, flat in rows
        }

    async def heartbeat_rate(self, *, now: float, window: float = 10.0) -> float:
        start = math.floor(now - window)
        end = math.floor(now)
        if end <= start:
            return 0.0
        keys = [f"{self.prefix}rate:{second}" for second in range(start, end)]
        counts = cast("list[str | None]", await self.client.mget(keys))
        return sum(int(c) for c in counts if c is not None) / window

    async def take_token(self, bucket: str, *, rate: float, burst: float, now: float) -> float:
        wait = await self._take_token(
            args=[self.prefix, bucket, _number(rate), _number(burst), _number(now)]
        )
        return float(wait)

    # -- recovery -------------------------------------------------------------------------

    async def is_restored(self) -> bool:
        return bool(await self.client.exists(f"{self.prefix}restored"))

    async def mark_restored(self) -> None:
        await self.client.set(f"{self.prefix}restored", "1")

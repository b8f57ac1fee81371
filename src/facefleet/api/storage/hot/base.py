"""The hot store: liveness that changes every few seconds and must cost no disk write.

The protocol is narrow on purpose: every method is one atomic step, so a Redis version can
implement each as one script without the services noticing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from facefleet.protocol.enums import LIVE_STATUSES, WorkerStatus


@dataclass
class LiveWorker:
    pk: int
    tenant_id: str
    worker_id: str
    session_hash: str
    hostname: str
    instance_id: str
    capacity: int
    labels: list[str]
    status: WorkerStatus
    desired_state: str
    last_seen: float
    deadline: float
    leases: dict[int, int] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # Set by an operator's shutdown signal: past it the reaper forces the worker offline.
    stop_deadline: float | None = None
    stop_mode: str | None = None
    # Changes with every change of ``leases`` (see ``next_generation``).
    generation: int = 0
    # Commands not yet acknowledged, by id: every heartbeat response carries them all.
    commands: dict[int, dict[str, Any]] = field(default_factory=dict)
    # The worker's latest report of each stream (StreamReport dicts).
    streams: list[dict[str, Any]] = field(default_factory=list)
    # Its presence channel: the open stream's token, and once that stream broke off, the
    # time after which it counts as gone (it fences itself before then).
    presence: str = ""
    presence_deadline: float | None = None

    @property
    def due(self) -> float:
        """When it expires: its lease deadline, or sooner an operator's shutdown deadline or
        the end of the grace after its presence channel broke."""
        early = [d for d in (self.stop_deadline, self.presence_deadline) if d is not None]
        return min([self.deadline, *early])

    def is_expired(self, now: float) -> bool:
        return self.is_live and now >= self.due

    def fenced_by(self) -> float:
        """Until when it may still believe its leases valid: its deadline, or the end of its
        presence grace (within which it fences itself) if that comes first."""
        if self.presence_deadline is not None:
            return min(self.deadline, self.presence_deadline)
        return self.deadline

    @property
    def key(self) -> str:
        return worker_key(self.tenant_id, self.worker_id)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


class SessionMismatch(Exception):
    """A heartbeat carried a session token other than the worker's current one."""


def worker_key(tenant_id: str, worker_id: str) -> str:
    return f"{tenant_id}/{worker_id}"


def next_generation(previous: int, now: float) -> int:
    """A worker's next lease generation: the clock in microseconds, or one more than the last
    when two changes share a microsecond. Derived from the clock, a generation keeps growing
    when a record is made anew (a registration, a hot store rebuilt after Redis lost it)."""
    return max(previous + 1, int(now * 1_000_000))


@dataclass(frozen=True)
class HeartbeatOutcome:
    worker: LiveWorker  # its ``commands`` are the ones the response hands out
    recovered: bool  # was suspect, is online again


@dataclass(frozen=True)
class DirtyLiveness:
    pk: int
    last_seen: float
    status: WorkerStatus
    metrics: dict[str, Any]


@dataclass(frozen=True)
class SweepResult:
    suspect: list[LiveWorker]
    expired: list[LiveWorker]
    # The status each expired worker had before the sweep, by worker key.
    expired_from: dict[str, WorkerStatus] = field(default_factory=dict)


class HotStore(Protocol):
    async def ping(self) -> None: ...

    async def close(self) -> None: ...

    async def put_worker(self, worker: LiveWorker) -> int:
        """Insert or replace a worker's live record (registration), with its leases and
        commands as given; returns the record's lease generation: newer than any before,
        and at least ``worker.generation``."""

    async def restore_worker(self, worker: LiveWorker) -> bool:
        """Insert a worker's record unless the store already has one (recovery must never
        overwrite a registration that raced it); True when it was inserted."""

    async def get_worker(self, tenant_id: str, worker_id: str) -> LiveWorker | None: ...

    async def list_workers(self, tenant_id: str | None = None) -> list[LiveWorker]: ...

    async def remove_worker(
        self, tenant_id: str, worker_id: str, *, only_if_offline: bool = False
    ) -> None:
        """Forget a worker; with ``only_if_offline``, only while its record is offline (the
        reaper's cleanup must not remove a registration that replaced it meanwhile)."""

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
        """Renew liveness and leases; None when the worker is unknown or no longer live.

        With ``session_hash`` the renewal happens only for that session (else SessionMismatch).
        The worker's unacknowledged commands are handed out again on every heartbeat until
        acknowledged, and counted as delivered (``take_delivered``).
        """

    async def presence_open(
        self, tenant_id: str, worker_id: str, token: str, *, now: float
    ) -> bool:
        """A presence stream opened: it is the worker's channel now, and any earlier
        expiry for a lost channel is lifted. False when the worker is not live."""

    async def presence_lost(
        self, tenant_id: str, worker_id: str, token: str, *, now: float, grace: float
    ) -> bool:
        """The presence stream ``token`` broke off (its process died, or its connection was
        cut): unless another stream replaced it, the worker expires ``grace`` from now."""

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
        """Change status (and what the worker is told to do); None if it is not known."""

    async def add_lease(
        self, tenant_id: str, worker_id: str, camera_id: int, epoch: int, *, now: float
    ) -> int | None:
        """Record a lease the database granted; the new generation, or None when the worker
        has no record."""

    async def drop_lease(
        self, tenant_id: str, worker_id: str, camera_id: int, *, now: float
    ) -> int | None:
        """Forget a lease; the new generation (unchanged if it was not there), or None."""

    async def set_leases(
        self, tenant_id: str, worker_id: str, leases: dict[int, int], *, now: float
    ) -> int | None:
        """Replace the lease map with the database's (repair); the generation changes only
        if the map did. None when the worker has no record."""

    async def add_command(self, tenant_id: str, worker_id: str, item: dict[str, Any]) -> bool:
        """Make a command deliverable (idempotent by its id); False without a record."""

    async def remove_command(self, tenant_id: str, worker_id: str, command_id: int) -> None: ...

    async def set_commands(
        self, tenant_id: str, worker_id: str, items: list[dict[str, Any]]
    ) -> bool:
        """Replace the deliverable commands with the database's (repair)."""

    async def take_delivered(self) -> list[int]:
        """Ids of commands handed out since the last call (to mark them delivered)."""

    async def sweep(
        self, *, now: float, suspect_after: float, tenant_id: str | None = None
    ) -> SweepResult:
        """Mark silent workers suspect and expired ones offline, atomically, and return them
        (only those of ``tenant_id``, when given).

        An expired worker keeps its lease map until ``drop_lease`` is called for each lease
        after the database released it, so a failed release is retried on the next sweep.
        """

    async def offline_with_leases(self) -> list[LiveWorker]: ...

    async def extend_grace(self, *, now: float, ttl: float) -> int:
        """Treat every live worker as if it had heartbeated at ``now`` (its commands
        untouched): after the whole control plane was down, a fleet that could not
        heartbeat meanwhile gets one TTL to do so. Returns how many workers it covered."""

    async def draining_with_leases(self) -> list[LiveWorker]: ...

    async def take_dirty(self) -> list[DirtyLiveness]:
        """Liveness changed since the last call (for the write-behind flush)."""

    async def take_touched(self) -> dict[str, dict[str, dict[str, Any] | None]]:
        """Workers that heartbeated since the last call, by tenant, each with the metrics of
        its latest heartbeat (None: it sent none), for the stats digest."""

    async def heartbeat_rate(self, *, now: float, window: float = 10.0) -> float: ...

    async def take_token(self, bucket: str, *, rate: float, burst: float, now: float) -> float:
        """Take one token from a rate-limit bucket: 0 when taken, else the seconds until one
        is there (nothing taken). A bucket starts full with ``burst`` tokens and gains
        ``rate`` a second up to ``burst``; replicas sharing the store share the bucket."""

    async def is_restored(self) -> bool:
        """False until ``mark_restored``, and again once the store lost its contents (a
        Redis restarted empty): the database must then be replayed into it."""

    async def mark_restored(self) -> None: ...

"""One leader among the control-plane replicas for the reaper, the flusher's shared part and
the stats digest.

With Redis, leadership is a lock: ``SET key <replica>:<token> NX PX ttl`` where the token
comes from a counter that only grows (a fencing token), renewed every ``ttl / 3`` by a
compare-and-extend script. The leader counts its lock as held only until ``ttl`` (minus a
margin) after the renewal was sent, so it stops acting before another replica can take over
the expired lock. Each pass checks the lock first, and passes that write to the database
check it against Redis again right before each commit, so a leader that lost the lock
(paused, cut off from Redis) does not act on the database after losing it. When the leader
dies, the lock expires and another replica takes it within ``ttl`` plus one renewal period.

With the in-process hot store there is one process, always the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import redis.asyncio as aioredis

from facefleet.api.storage import lua

log = logging.getLogger(__name__)

# The leader stops counting on its lock this long before the lock could expire in Redis.
SAFETY_MARGIN = 0.2


class LostLeadership(Exception):
    """This replica no longer holds the leader lock: the pass stops before acting."""


class Leadership(Protocol):
    def leading(self) -> bool:
        """Whether this replica holds the lock, by its own clock (no round trip)."""

    async def confirm(self) -> bool:
        """Whether this replica still holds the lock, checked against the lock itself."""

    async def run(self) -> None:
        """Acquire and renew the lock until cancelled."""

    async def release(self) -> None: ...

    async def vacant(self) -> bool:
        """Whether no replica holds the lock: none has been running for a while."""


async def ensure_leading(leadership: Leadership | None) -> None:
    """Raise LostLeadership unless ``leadership`` (None: no election) still holds."""
    if leadership is not None and not await leadership.confirm():
        raise LostLeadership("this replica lost the leader lock")


class SoleLeader:
    """The embedded mode: one process, always the leader."""

    def leading(self) -> bool:
        return True

    async def confirm(self) -> bool:
        return True

    async def run(self) -> None:
        return None

    async def release(self) -> None:
        return None

    async def vacant(self) -> bool:
        return True


def replica_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisLeaderLock:
    def __init__(
        self,
        client: aioredis.Redis,
        key: str,
        *,
        ttl: float = 3.0,
        renew_every: float | None = None,
        identity: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.key = key
        self.ttl = ttl
        self.renew_every = renew_every if renew_every is not None else ttl / 3
        self.identity = identity or replica_identity()
        self._monotonic = monotonic
        self._ttl_ms = str(max(1, round(ttl * 1000)))
        self._value: str | None = None
        self._valid_until = 0.0
        self._unreachable = False
        self._acquire = client.register_script(lua.script(__package__ or "", "leader_acquire"))
        self._renew = client.register_script(lua.script(__package__ or "", "leader_renew"))
        self._release = client.register_script(lua.script(__package__ or "", "leader_release"))

    @property
    def token(self) -> int | None:
        """The fencing token of the lock this replica holds (None when not leading)."""
        if self._value is None:
            return None
        return int(self._value.rsplit(":", 1)[1])

    def leading(self) -> bool:
        return self._value is not None and self._monotonic() < self._valid_until

    async def confirm(self) -> bool:
        if not self.leading():
            return False
        try:
            held = await self._client.get(self.key)
        except Exception:
            return False
        return held == self._value and self.leading()

    async def tick(self) -> bool:
        """One acquisition or renewal attempt; whether this replica leads afterwards."""
        sent = self._monotonic()
        try:
            if self._value is None:
                token = await self._acquire(
                    keys=[self.key, f"{self.key}:fence"], args=[self.identity, self._ttl_ms]
                )
                if token is not None:
                    self._value = f"{self.identity}:{int(token)}"
                    self._valid_until = sent + self.ttl - SAFETY_MARGIN
                    log.info("became the leader (%s, token %s)", self.key, token)
            elif await self._renew(keys=[self.key], args=[self._value, self._ttl_ms]):
                self._valid_until = sent + self.ttl - SAFETY_MARGIN
            else:
                log.warning("lost the leader lock %s", self.key)
                self._value = None
            self._unreachable = False
        except Exception as exc:
            # Keep counting on the lock until it could have expired; renew on the next tick.
            if not self._unreachable:
                log.warning("leader lock %s unreachable: %s", self.key, type(exc).__name__)
            self._unreachable = True
        if self._value is not None and not self.leading():
            log.warning("leader lock %s expired before it could be renewed", self.key)
            self._value = None
        return self.leading()

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.renew_every)

    async def vacant(self) -> bool:
        return not await self._client.exists(self.key)

    async def release(self) -> None:
        value, self._value = self._value, None
        if value is None:
            return
        with contextlib.suppress(Exception):
            await self._release(keys=[self.key], args=[value])


def when_leading(
    leadership: Leadership, action: Callable[[], Awaitable[Any]], name: str
) -> Callable[[], Awaitable[None]]:
    """``action`` run only while this replica leads (checked against the lock each time)."""

    async def run() -> None:
        if not leadership.leading() or not await leadership.confirm():
            return
        try:
            await action()
        except LostLeadership:
            log.warning("%s pass stopped: this replica lost the leader lock", name)

    return run

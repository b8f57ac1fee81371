"""The backend bundle: what choosing the in-process mode or Redis decides, in one place."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from facefleet.api.background.leader import Leadership, RedisLeaderLock, SoleLeader
from facefleet.api.background.leader_requests import LeaderRequests
from facefleet.api.clock import Clock, MonotonicClock, RedisClock
from facefleet.api.config import Settings
from facefleet.api.events.broker import EventBroker, MemoryEventBroker
from facefleet.api.events.redis_broker import RedisEventBroker
from facefleet.api.storage.hot.base import HotStore
from facefleet.api.storage.hot.memory import MemoryHotStore
from facefleet.api.storage.hot.redis import RedisHotStore, connect


@dataclass(frozen=True)
class Backend:
    """The hot store, the event broker and the leader election of one deployment mode."""

    hot: HotStore
    events: EventBroker
    # Who runs the reaper, the liveness flush and the stats digest: with Redis, the one
    # replica holding the leader lock; in-process, this process.
    leadership: Leadership
    # The one clock that judges leases: monotonic in-process, Redis's own with Redis.
    clock: Clock
    shared: bool  # several replicas may share it
    # How a replica that does not lead asks the leader (None: this process always leads).
    requests: LeaderRequests | None = None

    async def start(self) -> None:
        if isinstance(self.clock, RedisClock):
            await self.clock.calibrate()

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        """What must run while the app runs."""
        return [self.clock.run()] if isinstance(self.clock, RedisClock) else []


def build_backend(settings: Settings, *, on_event_drop: Callable[[], None]) -> Backend:
    if not settings.redis_url:
        return Backend(
            MemoryHotStore(),
            MemoryEventBroker(on_drop=on_event_drop),
            SoleLeader(),
            MonotonicClock(),
            False,
        )
    client = connect(settings.redis_url)
    prefix = settings.redis_prefix
    return Backend(
        # A record outlives many missed heartbeats, so only an abandoned one ever expires.
        RedisHotStore(client, prefix=prefix, record_ttl=max(60.0, 10 * settings.lease_ttl)),
        RedisEventBroker(client, prefix=prefix, on_drop=on_event_drop),
        RedisLeaderLock(client, f"{prefix}leader", ttl=settings.leader_lock_ttl),
        RedisClock(client.time),
        True,
        LeaderRequests(client, prefix),
    )

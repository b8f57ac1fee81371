"""A broker that hands every published event to a tap first (the integrations' outbox),
then publishes it as before. Events reach a tap exactly once: on the replica whose service
published them, never on the replicas that only relay them to their WebSocket clients."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from facefleet.api.events.broker import (
    Broadcast,
    BroadcastHandler,
    Event,
    EventBroker,
    Subscription,
)

# (tenant id, kind, data, when it happened)
Tap = Callable[[str, str, dict[str, Any], float], Awaitable[None]]


class TappedBroker:
    def __init__(self, inner: EventBroker, tap: Tap) -> None:
        self.inner = inner
        self._tap = tap

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def publish(self, tenant_id: str, kind: str, data: dict[str, Any]) -> Event:
        # The tap first, so the integrations get the event even when the broker fails to
        # fan it out. The tap only queues: it neither waits nor raises.
        await self._tap(tenant_id, kind, data, time.time())
        return await self.inner.publish(tenant_id, kind, data)

    def subscribe(self, tenant_id: str) -> Subscription:
        return self.inner.subscribe(tenant_id)

    def unsubscribe(self, sub: Subscription) -> None:
        self.inner.unsubscribe(sub)

    async def current_seq(self, tenant_id: str) -> int:
        return await self.inner.current_seq(tenant_id)

    async def replay(self, tenant_id: str, since: int) -> list[Event] | None:
        return await self.inner.replay(tenant_id, since)

    def tenants_watched(self) -> set[str]:
        return self.inner.tenants_watched()

    async def broadcast(self, message: Broadcast) -> None:
        await self.inner.broadcast(message)  # not an event: the integrations never see it

    def on_broadcast(self, handler: BroadcastHandler) -> None:
        self.inner.on_broadcast(handler)

    @property
    def drops(self) -> int:
        return self.inner.drops

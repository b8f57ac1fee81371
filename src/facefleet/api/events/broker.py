"""Events a tenant's operators see live, and the broker that orders and fans them out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

REPLAY_BUFFER = 1024
CLIENT_QUEUE = 256


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    data: dict[str, Any]
    ts: float

    def as_message(self) -> dict[str, Any]:
        return {
            "type": "event",
            "seq": self.seq,
            "kind": self.kind,
            "ts": self.ts,
            "data": self.data,
        }


class Subscription:
    """A client's bounded queue. When it overflows the client is dropped, never waited for."""

    def __init__(self, tenant_id: str, maxsize: int) -> None:
        self.tenant_id = tenant_id
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.overflowed = asyncio.Event()
        # Set when the broker ends the subscription for another reason than overflow (its
        # event log restarted): the client must start again from a snapshot.
        self.ended: str | None = None

    def end(self, reason: str) -> None:
        self.ended = reason
        self.overflowed.set()

    def offer(self, event: Event) -> bool:
        if self.overflowed.is_set():
            return False
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()
            return False
        return True


# A notice for every replica of the deployment (not a tenant's event: no sequence, no
# replay, no WebSocket client sees it), e.g. that an API key stopped working.
Broadcast = dict[str, Any]
BroadcastHandler = Callable[[Broadcast], None]


class EventBroker(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, tenant_id: str, kind: str, data: dict[str, Any]) -> Event: ...

    def subscribe(self, tenant_id: str) -> Subscription: ...

    def unsubscribe(self, sub: Subscription) -> None: ...

    async def current_seq(self, tenant_id: str) -> int: ...

    async def replay(self, tenant_id: str, since: int) -> list[Event] | None:
        """Events after ``since``, or None when the buffer no longer reaches back that far."""

    def tenants_watched(self) -> set[str]: ...

    async def broadcast(self, message: Broadcast) -> None:
        """Hand ``message`` to the broadcast handlers of every replica, this one first (at
        most once each; one that is disconnected meanwhile misses it)."""

    def on_broadcast(self, handler: BroadcastHandler) -> None: ...

    @property
    def drops(self) -> int: ...


@dataclass
class _TenantLog:
    seq: int = 0
    buffer: deque[Event] = field(default_factory=lambda: deque(maxlen=REPLAY_BUFFER))
    subscribers: set[Subscription] = field(default_factory=set)


class MemoryEventBroker:
    """Single-process broker: per-tenant sequence, replay ring buffer, bounded fan-out."""

    def __init__(
        self, client_queue: int = CLIENT_QUEUE, on_drop: Callable[[], None] | None = None
    ) -> None:
        self._logs: dict[str, _TenantLog] = {}
        self._client_queue = client_queue
        self._drops = 0
        self._on_drop = on_drop
        self._broadcast_handlers: list[BroadcastHandler] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _log(self, tenant_id: str) -> _TenantLog:
        return self._logs.setdefault(tenant_id, _TenantLog())

    async def publish(self, tenant_id: str, kind: str, data: dict[str, Any]) -> Event:
        log = self._log(tenant_id)
        log.seq += 1
        event = Event(log.seq, kind, data, time.time())
        log.buffer.append(event)
        for sub in list(log.subscribers):
            if not sub.offer(event):
                self._drops += 1
                if self._on_drop is not None:
                    self._on_drop()
        return event

    def subscribe(self, tenant_id: str) -> Subscription:
        sub = Subscription(tenant_id, self._client_queue)
        self._log(tenant_id).subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._log(sub.tenant_id).subscribers.discard(sub)

    async def current_seq(self, tenant_id: str) -> int:
        return self._log(tenant_id).seq

    async def replay(self, tenant_id: str, since: int) -> list[Event] | None:
        log = self._log(tenant_id)
        if since > log.seq:
            return None
        if since == log.seq:
            return []
        if not log.buffer or log.buffer[0].seq > since + 1:
            return None
        return [e for e in log.buffer if e.seq > since]

    def tenants_watched(self) -> set[str]:
        return {t for t, log in self._logs.items() if log.subscribers}

    async def broadcast(self, message: Broadcast) -> None:
        deliver_broadcast(self._broadcast_handlers, message)

    def on_broadcast(self, handler: BroadcastHandler) -> None:
        self._broadcast_handlers.append(handler)

    @property
    def drops(self) -> int:
        return self._drops


def deliver_broadcast(handlers: list[BroadcastHandler], message: Broadcast) -> None:
    for handler in handlers:
        try:
            handler(message)
        except Exception:  # one handler's bug must not keep the message from the others
            logging.getLogger(__name__).exception("broadcast handler failed")


def camera_released(worker_id: str, camera_id: int, epoch: int, reason: str) -> dict[str, Any]:
    """The payload of a ``camera_released`` event, wherever the release happened."""
    return {"worker_id": worker_id, "camera_id": camera_id, "epoch": epoch, "reason": reason}

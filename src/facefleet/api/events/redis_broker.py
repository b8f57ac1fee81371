"""Event broker shared by several control-plane replicas, on Redis.

- Sequence numbers: one counter per tenant (``INCR``), so they are global across replicas.
- Replay: a capped stream per tenant (``XADD MAXLEN ~``) whose entry ids are the sequence
  numbers, so ``replay(since)`` is one ``XRANGE``.
- Fan-out: the counter, the stream entry and a ``PUBLISH`` on one channel happen in one
  script, so every replica receives every tenant's events in sequence order and offers them
  to its local subscribers through the same bounded queues as the in-process broker.
- When the listener's connection comes back, events it missed meanwhile are read from the
  streams; a tenant whose counter went back (Redis restarted empty) ends its subscriptions,
  and their clients start again from a snapshot.
- Broadcasts (notices for every replica, not tenant events) go on a second channel the
  listener follows too; a replica disconnected at that moment misses them, so what they
  say must also be learnt another way in time (a key's revocation: the auth cache time).
- The stats digest runs on one replica but must reach clients of every replica, so each
  replica advertises the tenants it has clients for in a sorted set with a short expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, cast

import redis.asyncio as aioredis

from facefleet.api.events.broker import (
    CLIENT_QUEUE,
    REPLAY_BUFFER,
    Broadcast,
    BroadcastHandler,
    Event,
    Subscription,
    deliver_broadcast,
)
from facefleet.api.storage import lua

log = logging.getLogger(__name__)

# Tenants watched on any replica: advertised every WATCH_REFRESH, forgotten WATCH_TTL later.
WATCH_REFRESH = 1.0
WATCH_TTL = 5.0
START_TIMEOUT = 5.0


StreamEntry = tuple[str, dict[str, str]]


def _event(seq: int, payload: str) -> tuple[str, Event]:
    body = json.loads(payload)
    return body["tenant"], Event(seq, body["kind"], body["data"], body["ts"])


def _entry_event(entry: StreamEntry) -> Event:
    entry_id, fields = entry
    return _event(int(entry_id.split("-", 1)[0]), fields["e"])[1]


class RedisEventBroker:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        client_queue: int = CLIENT_QUEUE,
        replay_buffer: int = REPLAY_BUFFER,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._client_queue = client_queue
        self._replay_buffer = str(replay_buffer)
        self._on_drop = on_drop
        self._drops = 0
        self._subscribers: dict[str, set[Subscription]] = {}
        # The last sequence number offered to local subscribers, per watched tenant.
        self._last: dict[str, int] = {}
        self._watched_elsewhere: set[str] = set()
        self._watch_changed = asyncio.Event()
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._broadcast_handlers: list[BroadcastHandler] = []
        self._publish = client.register_script(lua.script(__package__ or "", "publish"))

    # -- keys -----------------------------------------------------------------------------

    def _seq_key(self, tenant_id: str) -> str:
        return f"{self._prefix}events:seq:{tenant_id}"

    def _log_key(self, tenant_id: str) -> str:
        return f"{self._prefix}events:log:{tenant_id}"

    @property
    def _channel(self) -> str:
        return f"{self._prefix}events"

    @property
    def _broadcast_channel(self) -> str:
        return f"{self._prefix}broadcast"

    @property
    def _watched_key(self) -> str:
        return f"{self._prefix}events:watched"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="event listener"),
            asyncio.create_task(self._advertise(), name="event watchers"),
        ]
        # Events published once start() returns reach this replica's subscribers.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), START_TIMEOUT)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- the protocol ---------------------------------------------------------------------

    async def publish(self, tenant_id: str, kind: str, data: dict[str, Any]) -> Event:
        ts = time.time()
        payload = json.dumps({"tenant": tenant_id, "kind": kind, "ts": ts, "data": data})
        seq = await self._publish(
            keys=[self._seq_key(tenant_id), self._log_key(tenant_id), self._channel],
            args=[payload, self._replay_buffer],
        )
        return Event(int(seq), kind, data, ts)

    def subscribe(self, tenant_id: str) -> Subscription:
        sub = Subscription(tenant_id, self._client_queue)
        if tenant_id not in self._subscribers:
            self._subscribers[tenant_id] = set()
            self._watch_changed.set()
        self._subscribers[tenant_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.tenant_id)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subscribers[sub.tenant_id]
            self._last.pop(sub.tenant_id, None)

    async def current_seq(self, tenant_id: str) -> int:
        value = await self._client.get(self._seq_key(tenant_id))
        return int(value) if value else 0

    async def replay(self, tenant_id: str, since: int) -> list[Event] | None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.get(self._seq_key(tenant_id))
            pipe.xrange(self._log_key(tenant_id), min=f"{since + 1}-0", max="+")
            current_raw, entries = await pipe.execute()
        current = int(current_raw) if current_raw else 0
        if since > current:
            return None
        if since == current:
            return []
        events = [_entry_event(entry) for entry in cast("list[StreamEntry]", entries)]
        if not events or events[0].seq != since + 1:
            return None
        return events

    def tenants_watched(self) -> set[str]:
        return set(self._subscribers) | self._watched_elsewhere

    async def broadcast(self, message: Broadcast) -> None:
        # Here at once, elsewhere through Redis (this replica hears it again: handlers are
        # idempotent).
        deliver_broadcast(self._broadcast_handlers, message)
        await self._client.publish(self._broadcast_channel, json.dumps(message))

    def on_broadcast(self, handler: BroadcastHandler) -> None:
        self._broadcast_handlers.append(handler)

    @property
    def drops(self) -> int:
        return self._drops

    # -- fan-out --------------------------------------------------------------------------

    def _offer(self, tenant_id: str, event: Event) -> None:
        last = self._last.get(tenant_id)
        if last is not None and event.seq <= last:
            return  # already offered (read from the stream after a reconnect)
        self._last[tenant_id] = event.seq
        for sub in list(self._subscribers.get(tenant_id, ())):
            if not sub.offer(event):
                self._drops += 1
                if self._on_drop is not None:
                    self._on_drop()

    def _deliver(self, message: str) -> None:
        seq, _, payload = message.partition(" ")
        tenant_id, event = _event(int(seq), payload)
        if tenant_id in self._subscribers:
            self._offer(tenant_id, event)

    async def _resync(self) -> None:
        """After (re)subscribing: offer what was published while the listener was away, and
        end the subscriptions of a tenant whose event log restarted."""
        for tenant_id in list(self._subscribers):
            last = self._last.get(tenant_id)
            if last is None:
                continue
            current = await self.current_seq(tenant_id)
            if current < last:
                for sub in list(self._subscribers.get(tenant_id, ())):
                    sub.end("the event log restarted")
                self._last[tenant_id] = current
                continue
            if current == last:
                continue
            missed = await self.replay(tenant_id, last)
            if missed is None:
                for sub in list(self._subscribers.get(tenant_id, ())):
                    sub.end("events were missed and are no longer in the replay buffer")
                self._last[tenant_id] = current
                continue
            for event in missed:
                self._offer(tenant_id, event)

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel, self._broadcast_channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["channel"] == self._broadcast_channel:
                        if message["type"] == "message":
                            deliver_broadcast(self._broadcast_handlers, json.loads(message["data"]))
                    elif message["type"] == "subscribe":
                        # Also after redis-py reconnected by itself.
                        await self._resync()
                        self._listening.set()
                        delay = 0.1
                    elif message["type"] == "message":
                        self._deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._listening.clear()
                log.warning(
                    "event listener lost Redis (%s); retrying in %.1fs", type(exc).__name__, delay
                )
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _advertise(self) -> None:
        while True:
            self._watch_changed.clear()
            try:
                now = time.time()
                async with self._client.pipeline(transaction=True) as pipe:
                    if self._subscribers:
                        expiry = now + WATCH_TTL
                        pipe.zadd(self._watched_key, dict.fromkeys(self._subscribers, expiry))
                    pipe.zremrangebyscore(self._watched_key, "-inf", now)
                    pipe.zrange(self._watched_key, 0, -1)
                    pipe.pexpire(self._watched_key, round(WATCH_TTL * 2000))
                    results = await pipe.execute()
                self._watched_elsewhere = set(results[-2])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("could not advertise watched tenants: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._watch_changed.wait(), WATCH_REFRESH)

"""The MQTT publisher: the leader's connection to the broker, draining the outbox.

- Only the replica holding the leader lock connects and publishes, so each event is
  published once however many replicas run; a new leader carries on from the outbox.
- An event is marked published only once the broker acknowledged (QoS 1) every message it
  became, so a broker outage or a crash loses nothing: the rest is sent after reconnecting,
  marked late when it is (messages.py), with the event id receivers de-duplicate on.
- Availability: "online" retained on connect, "offline" as the last will and when stepping
  down. A stale will of an earlier leader arriving after this one said online is answered
  by saying online again.
- Discovery configs are sent on every connect, when Home Assistant says it came online, and
  when cameras or people change (checked every ``mqtt_discovery_refresh``); entities that
  are gone get an empty retained config, which removes them from Home Assistant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

import aiomqtt

from facefleet.api.background.leader import Leadership, replica_identity
from facefleet.api.background.loops import outage
from facefleet.api.clock import to_datetime
from facefleet.api.mqtt import discovery
from facefleet.api.mqtt.broker import BrokerAddress
from facefleet.api.mqtt.messages import Message, messages_for
from facefleet.api.mqtt.topics import Topics
from facefleet.api.state import AppState
from facefleet.api.storage.db import mqtt_repo, outbox_repo

log = logging.getLogger(__name__)

BATCH = 200
# How long one publish may wait for the broker's acknowledgement.
PUBLISH_TIMEOUT = 5.0
RECONNECT_MIN, RECONNECT_MAX = 0.25, 5.0
ONLINE, OFFLINE = b"online", b"offline"


class _SteppedDown(Exception):
    """Leadership was lost or the process is stopping: leave the broker cleanly."""


async def _first_of(*coros: Coroutine[Any, Any, None]) -> None:
    """Run ``coros`` until one ends; cancel the others; re-raise what ended it."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


class MqttPublisher:
    def __init__(
        self, state: AppState, leadership: Leadership, wake: asyncio.Event, url: str
    ) -> None:
        self.state = state
        self.settings = state.settings
        self.leadership = leadership
        self.topics = Topics(self.settings.mqtt_topic_prefix, self.settings.mqtt_discovery_prefix)
        self.broker = BrokerAddress.parse(url)
        self._wake = wake
        self._stopping = asyncio.Event()
        self._resend_discovery = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="mqtt publisher")
        return self._task

    async def stop(self) -> None:
        """Say offline (when leading) and disconnect; bounded by the caller."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        delay = RECONNECT_MIN
        while not self._stopping.is_set():
            if not self.leadership.leading():
                await self._pause(self.settings.integrations_poll_period)
                continue
            try:
                await self._connected_session()
                delay = RECONNECT_MIN
            except aiomqtt.MqttError as exc:
                log.warning(
                    "MQTT broker %s unavailable (%s); retrying in %.2fs",
                    self.broker.display,
                    exc,
                    delay,
                )
                await self._pause(delay)
                delay = min(delay * 2, RECONNECT_MAX)
            except Exception:
                # Never let the publisher die: log, wait, connect again.
                log.exception("MQTT publisher failed; reconnecting in %.2fs", delay)
                await self._pause(delay)
                delay = min(delay * 2, RECONNECT_MAX)
            finally:
                self.state.metrics.mqtt_connected.set(0)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- one connection -------------------------------------------------------------------

    async def _connected_session(self) -> None:
        client = aiomqtt.Client(
            **self.broker.client_options(),
            identifier=f"facefleet-{replica_identity()}",
            will=aiomqtt.Will(self.topics.availability, OFFLINE, qos=1, retain=True),
            keepalive=self.settings.mqtt_keepalive,
            timeout=PUBLISH_TIMEOUT,
        )
        async with client:
            log.info("connected to MQTT broker %s", self.broker.display)
            self.state.metrics.mqtt_connected.set(1)
            await client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
            await client.subscribe(self.topics.availability, qos=1)
            await client.subscribe(self.topics.home_assistant_status, qos=1)
            try:
                await _first_of(self._listen(client), self._work(client))
            except _SteppedDown:
                log.info("left MQTT broker %s", self.broker.display)

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if message.topic.matches(self.topics.home_assistant_status) and payload == ONLINE:
                self._resend_discovery.set()
                self._wake.set()
            elif (
                message.topic.matches(self.topics.availability)
                and payload == OFFLINE
                and not self._stopping.is_set()
                and self.leadership.leading()
            ):
                await client.publish(self.topics.availability, ONLINE, qos=1, retain=True)

    async def _work(self, client: aiomqtt.Client) -> None:
        full_discovery = True
        next_discovery = 0.0
        while True:
            if self._stopping.is_set() or not await self.leadership.confirm():
                if self.leadership.leading():
                    await client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
                raise _SteppedDown
            try:
                if self.settings.mqtt_discovery and (
                    full_discovery
                    or self._resend_discovery.is_set()
                    or time.monotonic() >= next_discovery
                ):
                    full = full_discovery or self._resend_discovery.is_set()
                    self._resend_discovery.clear()
                    await self._sync_discovery(client, full=full)
                    full_discovery = False
                    next_discovery = time.monotonic() + self.settings.mqtt_discovery_refresh
                self._wake.clear()
                while await self._publish_batch(client):
                    pass
            except (aiomqtt.MqttError, _SteppedDown, asyncio.CancelledError):
                raise
            except Exception as exc:
                # The database, most likely: keep the broker connection, try again shortly.
                if (reason := outage(exc)) is not None:
                    log.warning("MQTT publishing paused: a dependency is unavailable (%s)", reason)
                else:
                    log.exception("MQTT publishing pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.integrations_poll_period)

    # -- the outbox -----------------------------------------------------------------------

    async def _publish_batch(self, client: aiomqtt.Client) -> bool:
        """Publish the oldest pending events; whether a full batch was taken."""
        sessions = self.state.sessions
        async with sessions() as session:
            rows = await outbox_repo.mqtt_pending(session, BATCH)
            if not rows:
                return False
            now = time.time()
            planned = [
                (
                    event.id,
                    messages_for(
                        event,
                        tenant,
                        self.topics,
                        now=now,
                        late_after=self.settings.mqtt_late_after,
                    ),
                )
                for event, tenant in rows
            ]
            held = await mqtt_repo.topics(
                session,
                (m.topic for _, messages in planned for m in messages if m.state_at is not None),
            )
        # The newest state each retained topic holds, as this batch goes on.
        holds: dict[str, datetime] = {topic: row.at for topic, row in held.items()}
        published: list[int] = []
        states: dict[str, datetime] = {}
        try:
            for event_id, messages in planned:
                if not self.leadership.leading():
                    raise _SteppedDown
                for message in messages:
                    if not self._newer(message, holds):
                        continue
                    await client.publish(
                        message.topic, message.payload, qos=1, retain=message.retain
                    )
                    self.state.metrics.mqtt_messages.labels(message.label).inc()
                    if message.state_at is not None:
                        holds[message.topic] = states[message.topic] = message.state_at
                published.append(event_id)
        finally:
            # Also when the broker went away mid-batch: what it acknowledged is done.
            if published:
                async with sessions() as session:
                    await outbox_repo.mark_published(session, published, to_datetime(time.time()))
                    for topic, at in states.items():
                        await mqtt_repo.remember_topic(session, topic, mqtt_repo.STATE, at)
                    await session.commit()
        return len(rows) == BATCH

    @staticmethod
    def _newer(message: Message, holds: dict[str, datetime]) -> bool:
        if message.state_at is None:
            return True
        held = holds.get(message.topic)
        return held is None or message.state_at > held

    async def _sync_discovery(self, client: aiomqtt.Client, *, full: bool) -> None:
        async with self.state.sessions() as session:
            wanted = await discovery.configs(
                session, self.topics, self.settings.mqtt_presence_seconds
            )
            held = await mqtt_repo.topics_of_kind(session, mqtt_repo.DISCOVERY)
        sent: dict[str, str] = {}
        for topic, payload in wanted.items():
            digest = discovery.digest(payload)
            if full or held.get(topic) != digest:
                await client.publish(topic, payload, qos=1, retain=True)
                self.state.metrics.mqtt_messages.labels("discovery").inc()
                sent[topic] = digest
        gone = [topic for topic in held if topic not in wanted]
        for topic in gone:
            await client.publish(topic, b"", qos=1, retain=True)
        if sent or gone:
            now = to_datetime(time.time())
            async with self.state.sessions() as session:
                for topic, digest in sent.items():
                    await mqtt_repo.remember_topic(session, topic, mqtt_repo.DISCOVERY, now, digest)
                await mqtt_repo.forget_topics(session, gone)
                await session.commit()
            log.info("MQTT discovery: %d configs sent, %d removed", len(sent), len(gone))

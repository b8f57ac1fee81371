"""The outbox writer: every event an integration takes becomes one row, written once by the
replica that published it, with a pending delivery per subscribed webhook in the same
transaction. Senders (MQTT, webhooks) run on the leader and read only these rows."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from facefleet.api.background.loops import outage
from facefleet.api.clock import to_datetime
from facefleet.api.config import Settings
from facefleet.api.integrations.catalog import EVENT_TYPES, MQTT_KINDS
from facefleet.api.integrations.payloads import enrich
from facefleet.api.observability.metrics import Metrics
from facefleet.api.storage.db import outbox_repo, webhooks_repo
from facefleet.api.storage.db.models import OutboxEvent, WebhookDelivery

log = logging.getLogger(__name__)

QUEUE = 100_000
BATCH = 200
RETRY_MIN, RETRY_MAX = 0.1, 2.0


class Wakeups:
    """Set when rows were recorded here, so this replica's senders need not wait a poll."""

    def __init__(self) -> None:
        self.mqtt = asyncio.Event()
        self.webhooks = asyncio.Event()


async def record_event(
    session: AsyncSession,
    *,
    tenant_id: str,
    kind: str,
    data: dict[str, Any],
    occurred_at: float,
    mqtt: bool,
    public_url: str | None,
    endpoint_ids: list[int],
    not_before: float | None = None,
) -> tuple[OutboxEvent, list[WebhookDelivery]]:
    """The outbox row of an event and a pending delivery to each of ``endpoint_ids``
    (first attempted at ``not_before``, default at once)."""
    row = outbox_repo.add_event(
        session,
        event_id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        kind=kind,
        data=await enrich(session, tenant_id, kind, data, public_url),
        occurred_at=to_datetime(occurred_at),
        mqtt_due=mqtt,
    )
    await session.flush()
    first = to_datetime(occurred_at if not_before is None else not_before)
    deliveries = [
        WebhookDelivery(endpoint_id=endpoint_id, event_pk=row.id, next_attempt_at=first)
        for endpoint_id in endpoint_ids
    ]
    session.add_all(deliveries)
    if deliveries:
        await session.flush()
    return row, deliveries


@dataclass(frozen=True)
class _Published:
    tenant_id: str
    kind: str
    data: dict[str, Any]
    occurred_at: float


class EventRecorder:
    """The broker's tap. Publishing only queues the event (the heartbeat path must need no
    database); one writer task records the queue in batches, one transaction each, retrying
    through a database outage. Closing the recorder writes what is still queued."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self._sessions = sessions
        # Which endpoints take an event is read without the write lock (on SQLite every
        # write transaction holds it from its start): most events go to no integration.
        self._reads = reads
        self._mqtt = settings.mqtt_url is not None
        self._public_url = settings.public_url
        self._metrics = metrics
        self._queue: asyncio.Queue[_Published] = asyncio.Queue(QUEUE)
        self._task: asyncio.Task[None] | None = None
        self.wake = Wakeups()

    async def __call__(
        self, tenant_id: str, kind: str, data: dict[str, Any], occurred_at: float
    ) -> None:
        if kind not in EVENT_TYPES:
            return
        try:
            self._queue.put_nowait(_Published(tenant_id, kind, data, occurred_at))
        except asyncio.QueueFull:
            # Only after a long database outage: the event still reaches the WebSocket.
            self._metrics.integration_record_failures.inc()
            log.error(
                "integrations outbox queue full: event %s of tenant %s dropped", kind, tenant_id
            )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="integrations outbox")

    async def close(self) -> None:
        """Write what is queued (the caller bounds how long), then stop."""
        if self._task is None:
            return
        try:
            await self._queue.join()
        finally:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        delay = RETRY_MIN
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            while True:
                try:
                    mqtt, webhooks = await self._write(batch)
                    delay = RETRY_MIN
                    break
                except Exception as exc:
                    reason = outage(exc)
                    if reason is None:
                        # Not an outage: retrying would fail the same way.
                        self._metrics.integration_record_failures.inc(len(batch))
                        log.exception("%d events not recorded for integrations", len(batch))
                        mqtt = webhooks = False
                        break
                    log.warning(
                        "integrations outbox waits for the database (%s); %d events queued",
                        reason,
                        len(batch) + self._queue.qsize(),
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
            for _ in batch:
                self._queue.task_done()
            if mqtt:
                self.wake.mqtt.set()
            if webhooks:
                self.wake.webhooks.set()

    async def _write(self, batch: list[_Published]) -> tuple[bool, bool]:
        """Record ``batch``; whether it gave MQTT and webhooks anything to send."""
        async with self._reads() as session:
            tenants = {event.tenant_id for event in batch}
            endpoints = {t: await webhooks_repo.enabled(session, t) for t in sorted(tenants)}
        routed: list[tuple[_Published, bool, list[int]]] = []
        for event in batch:
            mqtt = self._mqtt and event.kind in MQTT_KINDS
            subscribed = [
                e.id for e in endpoints[event.tenant_id] if webhooks_repo.takes(e, event.kind)
            ]
            if mqtt or subscribed:
                routed.append((event, mqtt, subscribed))
        if not routed:
            return False, False
        async with self._sessions() as session:
            for event, mqtt, subscribed in routed:
                await record_event(
                    session,
                    tenant_id=event.tenant_id,
                    kind=event.kind,
                    data=event.data,
                    occurred_at=event.occurred_at,
                    mqtt=mqtt,
                    public_url=self._public_url,
                    endpoint_ids=subscribed,
                )
            await session.commit()
        return any(mqtt for _, mqtt, _ in routed), any(subs for _, _, subs in routed)

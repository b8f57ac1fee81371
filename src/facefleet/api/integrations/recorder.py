"""The outbox writer: every event an integration takes becomes one row, written once by the
replica that published it, in one transaction with a pending delivery per subscribed
webhook. Senders (MQTT, webhooks) run on the leader and read only these rows."""

from __future__ import annotations

import asyncio
import logging
import uuid
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


class EventRecorder:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self._sessions = sessions
        self._mqtt = settings.mqtt_url is not None
        self._public_url = settings.public_url
        self._metrics = metrics
        self.wake = Wakeups()

    async def __call__(
        self, tenant_id: str, kind: str, data: dict[str, Any], occurred_at: float
    ) -> None:
        if kind not in EVENT_TYPES:
            return
        mqtt = self._mqtt and kind in MQTT_KINDS
        try:
            async with self._sessions() as session:
                endpoints = await webhooks_repo.subscribed(session, tenant_id, kind)
                if not mqtt and not endpoints:
                    return
                await record_event(
                    session,
                    tenant_id=tenant_id,
                    kind=kind,
                    data=data,
                    occurred_at=occurred_at,
                    mqtt=mqtt,
                    public_url=self._public_url,
                    endpoint_ids=[e.id for e in endpoints],
                )
                await session.commit()
        except Exception as exc:
            # The event is committed and reaches the WebSocket; only its integrations miss it.
            self._metrics.integration_record_failures.inc()
            reason = outage(exc) or f"{type(exc).__name__}: {exc}"
            log.error(
                "event %s of tenant %s not recorded for integrations: %s", kind, tenant_id, reason
            )
            return
        if mqtt:
            self.wake.mqtt.set()
        if endpoints:
            self.wake.webhooks.set()

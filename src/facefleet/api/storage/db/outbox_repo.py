"""The integrations' outbox: recorded events and what MQTT still owes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import OutboxEvent, Tenant, WebhookDelivery


def add_event(
    session: AsyncSession,
    *,
    event_id: str,
    tenant_id: str,
    kind: str,
    data: dict[str, Any],
    occurred_at: datetime,
    mqtt_due: bool,
) -> OutboxEvent:
    row = OutboxEvent(
        event_id=event_id,
        tenant_id=tenant_id,
        kind=kind,
        data=data,
        occurred_at=occurred_at,
        mqtt_due=mqtt_due,
    )
    session.add(row)
    return row


async def tenant_name(session: AsyncSession, tenant_id: str) -> str | None:
    return await session.scalar(select(Tenant.name).where(Tenant.id == tenant_id))


async def mqtt_pending(session: AsyncSession, limit: int) -> list[tuple[OutboxEvent, str]]:
    """Events MQTT has not published yet, oldest first, with their tenant's name."""
    rows = await session.execute(
        select(OutboxEvent, Tenant.name)
        .join(Tenant, Tenant.id == OutboxEvent.tenant_id)
        .where(OutboxEvent.mqtt_due.is_(True))
        .order_by(OutboxEvent.id)
        .limit(limit)
    )
    return [(event, name) for event, name in rows]


async def mark_published(session: AsyncSession, ids: Iterable[int], at: datetime) -> None:
    ids = list(ids)
    if ids:
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_(ids))
            .values(mqtt_due=False, mqtt_published_at=at)
        )


async def prune(session: AsyncSession, before: datetime) -> int:
    """Delete delivered webhooks and sent events older than ``before``; an event some
    delivery still needs (pending, or a dead letter) stays."""
    await session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.status == "delivered", WebhookDelivery.created_at < before
        )
    )
    still_needed = exists().where(WebhookDelivery.event_pk == OutboxEvent.id)
    result = await session.execute(
        delete(OutboxEvent).where(
            OutboxEvent.occurred_at < before, OutboxEvent.mqtt_due.is_(False), ~still_needed
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)

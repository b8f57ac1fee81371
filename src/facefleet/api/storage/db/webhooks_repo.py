"""Webhook endpoints, their deliveries and the attempts of each (the delivery log)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import (
    OutboxEvent,
    Tenant,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)


async def list_endpoints(session: AsyncSession, tenant_id: str) -> list[WebhookEndpoint]:
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id)
        .order_by(WebhookEndpoint.id)
    )
    return list(rows)


async def enabled(session: AsyncSession, tenant_id: str) -> list[WebhookEndpoint]:
    rows = await session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.enabled.is_(True)
        )
    )
    return list(rows)


def takes(endpoint: WebhookEndpoint, kind: str) -> bool:
    """Whether ``endpoint`` is subscribed to events of ``kind`` ("*": every kind)."""
    return kind in endpoint.event_types or "*" in endpoint.event_types


async def get_endpoint(
    session: AsyncSession, tenant_id: str, endpoint_id: int
) -> WebhookEndpoint | None:
    return await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id
        )
    )


async def counts(session: AsyncSession, endpoint_ids: list[int]) -> dict[int, dict[str, int]]:
    """Deliveries per endpoint and status."""
    if not endpoint_ids:
        return {}
    rows = await session.execute(
        select(WebhookDelivery.endpoint_id, WebhookDelivery.status, func.count())
        .where(WebhookDelivery.endpoint_id.in_(endpoint_ids))
        .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.status)
    )
    out: dict[int, dict[str, int]] = {}
    for endpoint_id, status, count in rows:
        out.setdefault(endpoint_id, {})[status] = int(count)
    return out


Due = tuple[WebhookDelivery, WebhookEndpoint, OutboxEvent, str]


async def due(session: AsyncSession, now: datetime, limit: int) -> list[Due]:
    """Pending deliveries whose next attempt is due, to enabled endpoints, soonest first."""
    rows = await session.execute(
        select(WebhookDelivery, WebhookEndpoint, OutboxEvent, Tenant.name)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_pk)
        .join(Tenant, Tenant.id == OutboxEvent.tenant_id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.enabled.is_(True),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    return [(d, e, ev, name) for d, e, ev, name in rows]


async def deliveries(
    session: AsyncSession, endpoint_id: int, status: str | None, offset: int, limit: int
) -> tuple[list[tuple[WebhookDelivery, OutboxEvent]], int]:
    query = (
        select(WebhookDelivery, OutboxEvent)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_pk)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    total = await session.scalar(
        select(func.count()).select_from(query.with_only_columns(WebhookDelivery.id).subquery())
    )
    rows = await session.execute(
        query.order_by(WebhookDelivery.id.desc()).offset(offset).limit(limit)
    )
    return [(d, ev) for d, ev in rows], int(total or 0)


async def delivery(
    session: AsyncSession, endpoint_id: int, delivery_id: int
) -> tuple[WebhookDelivery, OutboxEvent] | None:
    row = (
        await session.execute(
            select(WebhookDelivery, OutboxEvent)
            .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_pk)
            .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.id == delivery_id)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def attempts(
    session: AsyncSession, delivery_ids: list[int]
) -> dict[int, list[WebhookAttempt]]:
    if not delivery_ids:
        return {}
    rows = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.id)
    )
    out: dict[int, list[WebhookAttempt]] = {}
    for row in rows:
        out.setdefault(row.delivery_id, []).append(row)
    return out

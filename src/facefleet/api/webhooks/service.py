"""Webhook endpoints of the calling key's tenant, their delivery log and dead letters."""

from __future__ import annotations

import json
import time

from sqlalchemy import delete

from facefleet.api.errors import Conflict, FacefleetError, NotFound
from facefleet.api.integrations.catalog import EVENT_TYPES, PING
from facefleet.api.integrations.recorder import record_event
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.storage.db import outbox_repo, webhooks_repo
from facefleet.api.storage.db.models import (
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from facefleet.api.unit_of_work import UnitOfWork
from facefleet.api.webhooks import schemas, signing
from facefleet.api.webhooks.delivery import apply, body_of, client, send


class WebhookNotFound(NotFound):
    pass


class DeliveryNotFound(NotFound):
    pass


class InvalidWebhook(FacefleetError):
    status_code = 422


def endpoint_out(
    endpoint: WebhookEndpoint, counts: dict[str, int] | None = None
) -> schemas.WebhookOut:
    return schemas.WebhookOut(
        id=endpoint.id,
        url=endpoint.url,
        event_types=list(endpoint.event_types),
        description=endpoint.description,
        enabled=endpoint.enabled,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
        deliveries=schemas.DeliveryCounts(**(counts or {})),
    )


def delivery_out(
    delivery: WebhookDelivery, event: OutboxEvent, tenant: str, log: list[WebhookAttempt]
) -> schemas.DeliveryDetail:
    return schemas.DeliveryDetail(
        id=delivery.id,
        event_id=event.event_id,
        event_type=event.kind,
        occurred_at=event.occurred_at,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        last_attempt_at=delivery.last_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        payload=json.loads(body_of(event, tenant)),
        log=[
            schemas.AttemptOut(
                attempted_at=a.attempted_at,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
                response_excerpt=a.response_excerpt,
            )
            for a in log
        ],
    )


class WebhookService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def _endpoint(
        self, uow: UnitOfWork, principal: Principal, endpoint_id: int
    ) -> WebhookEndpoint:
        found = await webhooks_repo.get_endpoint(uow.session, principal.tenant_id, endpoint_id)
        if found is None:
            raise WebhookNotFound(f"webhook {endpoint_id} does not exist in this tenant")
        return found

    async def list(self, uow: UnitOfWork, principal: Principal) -> schemas.WebhookList:
        rows = await webhooks_repo.list_endpoints(uow.session, principal.tenant_id)
        counts = await webhooks_repo.counts(uow.session, [e.id for e in rows])
        return schemas.WebhookList(items=[endpoint_out(e, counts.get(e.id)) for e in rows])

    async def get(
        self, uow: UnitOfWork, principal: Principal, endpoint_id: int
    ) -> schemas.WebhookOut:
        endpoint = await self._endpoint(uow, principal, endpoint_id)
        counts = await webhooks_repo.counts(uow.session, [endpoint.id])
        return endpoint_out(endpoint, counts.get(endpoint.id))

    async def create(
        self, uow: UnitOfWork, principal: Principal, body: schemas.WebhookCreate
    ) -> schemas.WebhookCreated:
        endpoint = WebhookEndpoint(
            tenant_id=principal.tenant_id,
            url=body.url,
            event_types=body.event_types,
            secret=signing.new_secret(),
            description=body.description,
            enabled=body.enabled,
        )
        uow.session.add(endpoint)
        await uow.session.flush()
        return schemas.WebhookCreated(**endpoint_out(endpoint).model_dump(), secret=endpoint.secret)

    async def update(
        self,
        uow: UnitOfWork,
        principal: Principal,
        endpoint_id: int,
        body: schemas.WebhookUpdate,
    ) -> schemas.WebhookOut:
        endpoint = await self._endpoint(uow, principal, endpoint_id)
        for name, value in body.model_dump(exclude_unset=True).items():
            if value is None:
                raise InvalidWebhook(f"{name} cannot be null")
            setattr(endpoint, name, value)
        endpoint.updated_at = utcnow()
        await uow.session.flush()
        counts = await webhooks_repo.counts(uow.session, [endpoint.id])
        return endpoint_out(endpoint, counts.get(endpoint.id))

    async def delete(self, uow: UnitOfWork, principal: Principal, endpoint_id: int) -> None:
        endpoint = await self._endpoint(uow, principal, endpoint_id)
        await uow.session.execute(
            delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
        )
        await uow.session.delete(endpoint)

    async def deliveries(
        self,
        uow: UnitOfWork,
        principal: Principal,
        endpoint_id: int,
        status: str | None,
        offset: int,
        limit: int,
    ) -> schemas.DeliveryPage:
        endpoint = await self._endpoint(uow, principal, endpoint_id)
        rows, total = await webhooks_repo.deliveries(
            uow.session, endpoint.id, status, offset, limit
        )
        logs = await webhooks_repo.attempts(uow.session, [d.id for d, _ in rows])
        tenant = await outbox_repo.tenant_name(uow.session, principal.tenant_id) or ""
        return schemas.DeliveryPage(
            items=[delivery_out(d, ev, tenant, logs.get(d.id, [])) for d, ev in rows],
            total=total,
            offset=offset,
            limit=limit,
        )

    async def delivery(
        self, uow: UnitOfWork, principal: Principal, endpoint_id: int, delivery_id: int
    ) -> schemas.DeliveryDetail:
        endpoint = await self._endpoint(uow, principal, endpoint_id)
        found = await webhooks_repo.delivery(uow.session, endpoint.id, delivery_id)
        if found is None:
            raise DeliveryNotFound(f"webhook {endpoint_id} has no delivery {delivery_id}")
        delivery, event = found
        logs = await webhooks_repo.attempts(uow.session, [delivery.id])
        tenant = await outbox_repo.tenant_name(uow.session, principal.tenant_id) or ""
        return delivery_out(delivery, event, tenant, logs.get(delivery.id, []))

    async def retry(
        self, uow: UnitOfWork, principal: Principal, endpoint_id: int, delivery_id: int
    ) -> schemas.DeliveryDetail:
        """A dead letter goes back to pending, with a full set of attempts."""
        endpoint = await self._endpoint(uow, principal, endpoint_id)
        found = await webhooks_repo.delivery(uow.session, endpoint.id, delivery_id)
        if found is None:
            raise DeliveryNotFound(f"webhook {endpoint_id} has no delivery {delivery_id}")
        delivery, _ = found
        if delivery.status != "dead":
            raise Conflict(f"delivery {delivery_id} is {delivery.status}, not a dead letter")
        delivery.status = "pending"
        delivery.attempts = 0
        delivery.next_attempt_at = utcnow()
        await uow.session.flush()
        return await self.delivery(uow, principal, endpoint_id, delivery_id)

    async def test(self, principal: Principal, endpoint_id: int) -> schemas.TestDelivery:
        """Send a ping now and report what the receiver answered. The ping is an ordinary
        delivery: in the log, and retried like any other when it fails. No transaction is
        open while the receiver answers."""
        state = self.state
        settings = state.settings
        now = time.time()
        async with state.sessions() as session:
            endpoint = await webhooks_repo.get_endpoint(session, principal.tenant_id, endpoint_id)
            if endpoint is None:
                raise WebhookNotFound(f"webhook {endpoint_id} does not exist in this tenant")
            url, secret = endpoint.url, endpoint.secret
            tenant = await outbox_repo.tenant_name(session, principal.tenant_id) or ""
            event, deliveries = await record_event(
                session,
                tenant_id=principal.tenant_id,
                kind=PING,
                data={"webhook_id": endpoint_id, "message": "a test delivery from facefleet"},
                occurred_at=now,
                mqtt=False,
                public_url=settings.public_url,
                endpoint_ids=[endpoint_id],
                # Held back from the retry loop while this request sends it.
                not_before=now + settings.webhook_timeout + 5,
            )
            delivery_id = deliveries[0].id
            await session.commit()
        async with client(settings) as http:
            outcome = await send(
                http,
                url=url,
                secret=secret,
                body=body_of(event, tenant),
                event=event,
                delivery_id=delivery_id,
                attempt=1,
            )
        async with state.sessions() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                raise WebhookNotFound(f"webhook {endpoint_id} was deleted during its test")
            attempt = apply(settings, delivery, outcome)
            session.add(attempt)
            await session.commit()
        return schemas.TestDelivery(
            delivered=outcome.ok, delivery=delivery_out(delivery, event, tenant, [attempt])
        )

    @staticmethod
    def event_types() -> schemas.EventTypes:
        return schemas.EventTypes(types=dict(EVENT_TYPES))

"""/v1/webhooks: endpoints of the calling key's tenant (admin keys change them, any reader
lists them; the secret is returned once, by the create call)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

import facefleet.api.id_paths  # noqa: F401  (registers {name:id})
from facefleet.api.deps import Admin, Reader, State, Uow
from facefleet.api.errors import Conflict, Forbidden, NotFound
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import StrictJsonRoute
from facefleet.api.webhooks import schemas
from facefleet.api.webhooks.service import InvalidWebhook, WebhookService
from facefleet.protocol.ids import BigId, Id, Offset

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=StrictJsonRoute)


@router.get("/event-types", response_model=schemas.EventTypes, responses=_errors(Forbidden))
async def event_types(principal: Reader) -> schemas.EventTypes:
    return WebhookService.event_types()


@router.get("", response_model=schemas.WebhookList, responses=_errors(Forbidden))
async def list_webhooks(principal: Reader, state: State, uow: Uow) -> schemas.WebhookList:
    return await WebhookService(state).list(uow, principal)


@router.post(
    "",
    status_code=201,
    response_model=schemas.WebhookCreated,
    responses=_errors(Forbidden),
    summary="Subscribe a URL to event types (the response shows the signing secret, once)",
)
async def create_webhook(
    body: schemas.WebhookCreate, principal: Admin, state: State, uow: Uow
) -> schemas.WebhookCreated:
    return await WebhookService(state).create(uow, principal, body)


@router.get(
    "/{webhook_id:id}", response_model=schemas.WebhookOut, responses=_errors(Forbidden, NotFound)
)
async def get_webhook(
    webhook_id: Id, principal: Reader, state: State, uow: Uow
) -> schemas.WebhookOut:
    return await WebhookService(state).get(uow, principal, webhook_id)


@router.patch(
    "/{webhook_id:id}",
    response_model=schemas.WebhookOut,
    responses=_errors(Forbidden, NotFound, InvalidWebhook),
)
async def update_webhook(
    webhook_id: Id, body: schemas.WebhookUpdate, principal: Admin, state: State, uow: Uow
) -> schemas.WebhookOut:
    return await WebhookService(state).update(uow, principal, webhook_id, body)


@router.delete(
    "/{webhook_id:id}",
    status_code=204,
    response_class=Response,
    responses=_errors(Forbidden, NotFound),
    summary="Delete an endpoint with its delivery log and dead letters",
)
async def delete_webhook(webhook_id: Id, principal: Admin, state: State, uow: Uow) -> Response:
    await WebhookService(state).delete(uow, principal, webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id:id}/test",
    response_model=schemas.TestDelivery,
    responses=_errors(Forbidden, NotFound),
    summary="Send a signed ping now and report the receiver's answer",
)
async def test_webhook(webhook_id: Id, principal: Admin, state: State) -> schemas.TestDelivery:
    return await WebhookService(state).test(principal, webhook_id)


@router.get(
    "/{webhook_id:id}/deliveries",
    response_model=schemas.DeliveryPage,
    responses=_errors(Forbidden, NotFound),
    summary="The delivery log, newest first, each delivery with its attempts",
)
async def list_deliveries(
    webhook_id: Id,
    principal: Reader,
    state: State,
    uow: Uow,
    status: Annotated[schemas.DeliveryStatus | None, Query()] = None,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> schemas.DeliveryPage:
    return await WebhookService(state).deliveries(uow, principal, webhook_id, status, offset, limit)


@router.get(
    "/{webhook_id:id}/dead-letters",
    response_model=schemas.DeliveryPage,
    responses=_errors(Forbidden, NotFound),
    summary="Deliveries that failed every attempt",
)
async def list_dead_letters(
    webhook_id: Id,
    principal: Reader,
    state: State,
    uow: Uow,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> schemas.DeliveryPage:
    return await WebhookService(state).deliveries(uow, principal, webhook_id, "dead", offset, limit)


@router.get(
    "/{webhook_id:id}/deliveries/{delivery_id:id}",
    response_model=schemas.DeliveryDetail,
    responses=_errors(Forbidden, NotFound),
)
async def get_delivery(
    webhook_id: Id, delivery_id: BigId, principal: Reader, state: State, uow: Uow
) -> schemas.DeliveryDetail:
    return await WebhookService(state).delivery(uow, principal, webhook_id, delivery_id)


@router.post(
    "/{webhook_id:id}/deliveries/{delivery_id:id}/retry",
    response_model=schemas.DeliveryDetail,
    responses=_errors(Forbidden, NotFound, Conflict),
    summary="Send a dead letter again (a full set of attempts)",
)
async def retry_delivery(
    webhook_id: Id, delivery_id: BigId, principal: Admin, state: State, uow: Uow
) -> schemas.DeliveryDetail:
    return await WebhookService(state).retry(uow, principal, webhook_id, delivery_id)

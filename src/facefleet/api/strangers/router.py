"""/v1/strangers: unknown faces that keep coming back, their promotion and erasure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from facefleet.api.deps import Admin, Reader, State, Uow
from facefleet.api.errors import Conflict, Forbidden, NotFound
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import StrictJsonRoute
from facefleet.api.strangers import schemas
from facefleet.api.strangers.service import StrangerService
from facefleet.protocol.ids import Count, Id, Offset
from facefleet.protocol.times import Instant

router = APIRouter(tags=["strangers"], route_class=StrictJsonRoute)


@router.get("/v1/strangers", response_model=schemas.StrangerPage, responses=_errors(Forbidden))
async def list_strangers(
    principal: Reader,
    state: State,
    uow: Uow,
    min_sightings: Annotated[Count, Query(ge=1, description="Seen at least this often")] = 1,
    since: Annotated[Instant | None, Query(description="Last seen at or after")] = None,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> schemas.StrangerPage:
    """Strangers not promoted yet, the most recently seen first."""
    return await StrangerService(state).page(uow, principal, min_sightings, since, offset, limit)


@router.get(
    "/v1/strangers/{stranger_id}",
    response_model=schemas.StrangerOut,
    responses=_errors(Forbidden, NotFound),
)
async def get_stranger(
    stranger_id: Id, principal: Reader, state: State, uow: Uow
) -> schemas.StrangerOut:
    return await StrangerService(state).get(uow, principal, stranger_id)


@router.post(
    "/v1/strangers/{stranger_id}/promote",
    response_model=schemas.PromoteResponse,
    responses=_errors(Forbidden, NotFound, Conflict),
    summary="Make a stranger a person (new or existing), with all of its sightings",
)
async def promote_stranger(
    stranger_id: Id, body: schemas.PromoteStranger, principal: Admin, state: State, uow: Uow
) -> schemas.PromoteResponse:
    return await StrangerService(state).promote(uow, principal, stranger_id, body)


@router.delete(
    "/v1/strangers/{stranger_id}",
    response_model=schemas.StrangerErasure,
    responses=_errors(Forbidden, NotFound),
    summary="Erase a stranger and every sighting of it (audited, without biometric data)",
)
async def erase_stranger(
    stranger_id: Id, principal: Admin, state: State, uow: Uow
) -> schemas.StrangerErasure:
    return await StrangerService(state).erase(uow, principal, stranger_id)

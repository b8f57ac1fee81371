"""POST /v1/workers/{worker_id}/sightings (workers) and /v1/sightings (operators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from facefleet.api.deps import Admin, CurrentWorker, Reader, State, Uow, WorkerOrAdmin
from facefleet.api.errors import Conflict, Forbidden, NotFound
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import StrictJsonRoute
from facefleet.api.people.learning import LearningService
from facefleet.api.people.schemas import (
    AssignResponse,
    AssignSighting,
    NotPerson,
    NotPersonResponse,
)
from facefleet.api.sightings import schemas
from facefleet.api.sightings.service import SightingService
from facefleet.api.storage.db.sightings_repo import SightingFilter
from facefleet.api.workers.paths import WORKER_ID_PATH
from facefleet.protocol.ids import BigId, Id, Offset
from facefleet.protocol.times import Instant

router = APIRouter(tags=["sightings"], route_class=StrictJsonRoute)


@router.post(
    "/v1/workers/{worker_id}/sightings",
    response_model=schemas.SightingBatchResult,
    responses=_errors(Forbidden, NotFound, Conflict),
    summary="Report sightings of a leased camera (409 when the epoch is stale)",
)
async def report_sightings(
    worker_id: Annotated[str, WORKER_ID_PATH],
    live: CurrentWorker,
    body: schemas.SightingBatch,
    principal: WorkerOrAdmin,
    state: State,
    uow: Uow,
) -> schemas.SightingBatchResult:
    return await SightingService(state).record(uow, principal, live, body)


@router.get("/v1/sightings", response_model=schemas.SightingPage, responses=_errors(Forbidden))
async def list_sightings(
    principal: Reader,
    state: State,
    uow: Uow,
    camera_id: Id | None = None,
    person_id: Id | None = None,
    known: Annotated[bool | None, Query(description="Only known (true) or unknown (false)")] = None,
    since: Annotated[Instant | None, Query(description="Seen at or after (ISO 8601)")] = None,
    until: Annotated[Instant | None, Query(description="Seen at or before (ISO 8601)")] = None,
    stranger_id: Annotated[Id | None, Query(description="Sightings of this stranger")] = None,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> schemas.SightingPage:
    found = SightingFilter(camera_id, person_id, known, since, until, stranger_id)
    return await SightingService(state).page(uow, principal, found, offset, limit)


@router.get(
    "/v1/sightings/{sighting_id}/crop",
    response_class=Response,
    responses=_errors(Forbidden, NotFound) | {200: {"content": {"image/jpeg": {}}}},
)
async def sighting_crop(sighting_id: BigId, principal: Reader, state: State, uow: Uow) -> Response:
    return Response(
        await SightingService(state).crop(uow, principal, sighting_id), media_type="image/jpeg"
    )


@router.post(
    "/v1/sightings/{sighting_id}/assign",
    response_model=AssignResponse,
    responses=_errors(Forbidden, NotFound),
    summary="Say who a sighting shows; its crop is enrolled (checked like a photo)",
)
async def assign_sighting(
    sighting_id: BigId, body: AssignSighting, principal: Admin, state: State, uow: Uow
) -> AssignResponse:
    return await LearningService(state).assign(uow, principal, sighting_id, body)


@router.post(
    "/v1/sightings/{sighting_id}/not-person",
    response_model=NotPersonResponse,
    responses=_errors(Forbidden, NotFound),
    summary="Say a sighting is not a person: faces that close to it no longer match them",
)
async def sighting_not_person(
    sighting_id: BigId, body: NotPerson, principal: Admin, state: State, uow: Uow
) -> NotPersonResponse:
    return await LearningService(state).not_person(uow, principal, sighting_id, body)

"""POST /v1/workers/{worker_id}/sightings (workers) and /v1/sightings (operators)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from facefleet.api.deps import CurrentWorker, Reader, State, Uow, WorkerOrAdmin
from facefleet.api.errors import Conflict, Forbidden, NotFound
from facefleet.api.errors import error_responses as _errors
from facefleet.api.sightings import schemas
from facefleet.api.sightings.service import SightingService
from facefleet.api.storage.db.sightings_repo import SightingFilter
from facefleet.api.workers.paths import WORKER_ID_PATH

router = APIRouter(tags=["sightings"])


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
    camera_id: int | None = None,
    person_id: int | None = None,
    known: Annotated[bool | None, Query(description="Only known (true) or unknown (false)")] = None,
    since: Annotated[datetime | None, Query(description="Seen at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Seen at or before (ISO 8601)")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> schemas.SightingPage:
    found = SightingFilter(camera_id, person_id, known, _aware(since), _aware(until))
    return await SightingService(state).page(uow, principal, found, offset, limit)


@router.get(
    "/v1/sightings/{sighting_id}/crop",
    response_class=Response,
    responses=_errors(Forbidden, NotFound) | {200: {"content": {"image/jpeg": {}}}},
)
async def sighting_crop(sighting_id: int, principal: Reader, state: State, uow: Uow) -> Response:
    return Response(
        await SightingService(state).crop(uow, principal, sighting_id), media_type="image/jpeg"
    )


def _aware(value: datetime | None) -> datetime | None:
    """Times without a zone are taken as UTC."""

    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)

"""/v1/cameras: the tenant's cameras."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from facefleet.api.cameras import schemas
from facefleet.api.cameras.service import CameraService
from facefleet.api.deps import Admin, Reader, State, Uow
from facefleet.api.errors import Conflict, Forbidden, NotFound
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import StrictJsonRoute
from facefleet.protocol.ids import Id, Offset

router = APIRouter(prefix="/v1/cameras", tags=["cameras"], route_class=StrictJsonRoute)


@router.get("", response_model=schemas.CameraPage, responses=_errors(Forbidden))
async def list_cameras(
    principal: Reader,
    state: State,
    uow: Uow,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> schemas.CameraPage:
    return await CameraService(state).page(uow, principal, offset, limit)


@router.post(
    "", status_code=201, response_model=schemas.CameraOut, responses=_errors(Forbidden, Conflict)
)
async def create_camera(
    body: schemas.CameraCreate, principal: Admin, state: State, uow: Uow
) -> schemas.CameraOut:
    return await CameraService(state).create(uow, principal, body)


@router.get(
    "/{camera_id}", response_model=schemas.CameraOut, responses=_errors(Forbidden, NotFound)
)
async def get_camera(camera_id: Id, principal: Reader, state: State, uow: Uow) -> schemas.CameraOut:
    return await CameraService(state).get(uow, principal, camera_id)


@router.patch(
    "/{camera_id}",
    response_model=schemas.CameraOut,
    responses=_errors(Forbidden, NotFound, Conflict),
    summary="Change a camera; disabling it or changing its source revokes its lease",
)
async def update_camera(
    camera_id: Id, body: schemas.CameraUpdate, principal: Admin, state: State, uow: Uow
) -> schemas.CameraOut:
    return await CameraService(state).update(uow, principal, camera_id, body)


@router.delete(
    "/{camera_id}", status_code=204, response_class=Response, responses=_errors(Forbidden, NotFound)
)
async def delete_camera(camera_id: Id, principal: Admin, state: State, uow: Uow) -> Response:
    await CameraService(state).delete(uow, principal, camera_id)
    return Response(status_code=204)

"""The consolidated worker API: every worker operation under /v1/workers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from facefleet.api.background.reaper import cleanup_now
from facefleet.api.deps import (
    Admin,
    CurrentWorker,
    Reader,
    State,
    Uow,
    WorkerOrAdmin,
    WorkerSession,
)
from facefleet.api.errors import Conflict, Forbidden, NotFound, ServiceUnavailable
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import StrictJsonRoute
from facefleet.api.workers import schemas
from facefleet.api.workers.assignment import MAX_WAIT, AssignmentService
from facefleet.api.workers.commands import CommandService
from facefleet.api.workers.control import ControlService
from facefleet.api.workers.paths import WorkerPath
from facefleet.api.workers.queries import WorkerQueries
from facefleet.api.workers.service import WorkerService
from facefleet.protocol.enums import WorkerStatus
from facefleet.protocol.ids import Id, Offset

router = APIRouter(prefix="/v1/workers", tags=["workers"], route_class=StrictJsonRoute)


@router.post(
    "/register",
    response_model=schemas.RegisterResponse,
    responses=_errors(Forbidden, Conflict),
    summary="Register a worker (idempotent on worker_id)",
)
async def register(
    body: schemas.RegisterRequest,
    principal: WorkerOrAdmin,
    state: State,
    uow: Uow,
    session_token: WorkerSession = None,
) -> schemas.RegisterResponse:
    return await WorkerService(state).register(uow, principal, body, session_token)


@router.get("", response_model=schemas.WorkerPage, responses=_errors(Forbidden))
async def list_workers(
    principal: Reader,
    state: State,
    uow: Uow,
    status: WorkerStatus | None = None,
    label: str | None = None,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> schemas.WorkerPage:
    return await WorkerQueries(state).list(
        uow.session, principal, status=status, label=label, offset=offset, limit=limit
    )


@router.get("/stats", response_model=schemas.WorkerStats, responses=_errors(Forbidden))
async def stats(principal: Reader, state: State, uow: Uow) -> schemas.WorkerStats:
    return await WorkerQueries(state).stats(uow.session, principal)


@router.post(
    "/cleanup",
    response_model=schemas.CleanupResponse,
    responses=_errors(Forbidden, ServiceUnavailable),
    summary="Run the reaper's pass over this tenant now, on the leader (or only report what "
    "it would change)",
)
async def cleanup(principal: Admin, state: State, dry_run: bool = False) -> schemas.CleanupResponse:
    tenant_id = principal.tenant_id
    if dry_run:
        assert state.reaper is not None
        found = await state.reaper.dry_run(tenant_id)
    else:
        found = await cleanup_now(state, tenant_id)
    return schemas.CleanupResponse(
        dry_run=dry_run,
        changes=[
            schemas.CleanupChange(
                worker_id=t.worker_id,
                from_status=t.from_status,
                to_status=t.to_status,
                released_cameras=t.released_cameras,
            )
            for t in found
            if t.tenant_id == tenant_id
        ],
    )


@router.get(
    "/{worker_id}", response_model=schemas.WorkerDetail, responses=_errors(Forbidden, NotFound)
)
async def get_worker(
    worker_id: WorkerPath, principal: Reader, state: State, uow: Uow
) -> schemas.WorkerDetail:
    return await WorkerQueries(state).get(uow.session, principal, worker_id)


@router.delete(
    "/{worker_id}",
    response_model=schemas.DeregisterResponse,
    responses=_errors(Forbidden, NotFound),
    summary="Deregister a worker and release its cameras",
)
async def deregister(
    worker_id: WorkerPath,
    principal: WorkerOrAdmin,
    state: State,
    uow: Uow,
    session_token: WorkerSession = None,
) -> schemas.DeregisterResponse:
    return await WorkerService(state).deregister(uow, principal, worker_id, session_token)


@router.post(
    "/{worker_id}/camera/request",
    response_model=schemas.CameraRequestResponse,
    responses=_errors(Forbidden, NotFound),
    summary="Ask for a camera; 200 with no assignment and retry_after when none is free",
)
async def request_camera(
    worker_id: WorkerPath,
    live: CurrentWorker,
    principal: WorkerOrAdmin,
    state: State,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT,
            description="Seconds to wait for a camera to become free (a long poll) when "
            "none is free now.",
        ),
    ] = 0.0,
) -> schemas.CameraRequestResponse:
    return await AssignmentService(state).request_camera(principal, live, wait)


@router.get(
    "/{worker_id}/camera",
    response_model=schemas.CurrentAssignments,
    responses=_errors(Forbidden, NotFound),
)
async def current_camera(
    worker_id: WorkerPath,
    live: CurrentWorker,
    principal: WorkerOrAdmin,
    state: State,
    uow: Uow,
) -> schemas.CurrentAssignments:
    return await AssignmentService(state).current(uow, principal, live)


@router.post(
    "/{worker_id}/camera/release",
    response_model=schemas.ReleaseResponse,
    responses=_errors(Forbidden, NotFound, Conflict),
    summary="Give a camera back (409 when the epoch is stale)",
)
async def release_camera(
    worker_id: WorkerPath,
    live: CurrentWorker,
    body: schemas.ReleaseRequest,
    principal: WorkerOrAdmin,
    state: State,
    uow: Uow,
) -> schemas.ReleaseResponse:
    return await AssignmentService(state).release(uow, principal, live, body)


@router.post(
    "/{worker_id}/shutdown/signal",
    response_model=schemas.ShutdownResponse,
    responses=_errors(Forbidden, NotFound),
    summary="Stop signal: from the worker (releases its cameras now) or an operator",
)
async def shutdown_signal(
    worker_id: WorkerPath,
    live: CurrentWorker,
    principal: WorkerOrAdmin,
    state: State,
    uow: Uow,
    body: schemas.ShutdownSignal | None = None,
) -> schemas.ShutdownResponse:
    return await ControlService(state).shutdown_signal(
        uow, principal, live, body or schemas.ShutdownSignal()
    )


@router.post(
    "/{worker_id}/drain",
    response_model=schemas.ControlResponse,
    responses=_errors(Forbidden, NotFound, Conflict),
    summary="Take no new cameras and hand the current ones over one by one",
)
async def drain(
    # The role first: a key that may not do this hears so, whatever the worker_id.
    worker_id: WorkerPath,
    principal: Admin,
    live: CurrentWorker,
    state: State,
    uow: Uow,
) -> schemas.ControlResponse:
    return await ControlService(state).set_draining(uow, principal, live, True)


@router.post(
    "/{worker_id}/undrain",
    response_model=schemas.ControlResponse,
    responses=_errors(Forbidden, NotFound, Conflict),
)
async def undrain(
    # The role first: a key that may not do this hears so, whatever the worker_id.
    worker_id: WorkerPath,
    principal: Admin,
    live: CurrentWorker,
    state: State,
    uow: Uow,
) -> schemas.ControlResponse:
    return await ControlService(state).set_draining(uow, principal, live, False)


@router.post(
    "/{worker_id}/commands",
    status_code=201,
    response_model=schemas.CommandOut,
    responses=_errors(Forbidden, NotFound)
    | {200: {"model": schemas.CommandOut, "description": "Idempotent repeat"}},
    summary="Send a command, delivered in the worker's next heartbeat response",
)
async def create_command(
    worker_id: WorkerPath,
    body: schemas.CommandCreate,
    principal: Admin,
    state: State,
    uow: Uow,
    response: Response,
) -> schemas.CommandOut:
    command, created = await CommandService(state).create(uow, principal, worker_id, body)
    if not created:
        response.status_code = 200
    return command


@router.get(
    "/{worker_id}/commands",
    response_model=schemas.CommandPage,
    responses=_errors(Forbidden, NotFound),
)
async def list_commands(
    worker_id: WorkerPath,
    principal: Reader,
    state: State,
    uow: Uow,
    status: schemas.CommandStatus | None = None,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> schemas.CommandPage:
    return await CommandService(state).list(uow, principal, worker_id, status, offset, limit)


@router.get(
    "/{worker_id}/commands/{command_id}",
    response_model=schemas.CommandOut,
    responses=_errors(Forbidden, NotFound),
)
async def get_command(
    worker_id: WorkerPath, command_id: Id, principal: Reader, state: State, uow: Uow
) -> schemas.CommandOut:
    return await CommandService(state).get(uow, principal, worker_id, command_id)


@router.post(
    "/{worker_id}/commands/{command_id}/ack",
    response_model=schemas.CommandOut,
    responses=_errors(Forbidden, NotFound, Conflict),
    summary="Acknowledge a command with its result (acked or failed)",
)
async def ack_command(
    worker_id: WorkerPath,
    live: CurrentWorker,
    command_id: Id,
    body: schemas.CommandAck,
    principal: WorkerOrAdmin,
    state: State,
    uow: Uow,
) -> schemas.CommandOut:
    return await CommandService(state).ack(uow, principal, live, command_id, body)

"""The pre-consolidation worker paths, kept while old clients migrate (docs/migration.md).

Each answers through the same services, dependencies and schemas as its successor, so a
worker may register on one path and continue on the other. Every response, errors
included, carries ``Deprecation`` and a ``Link`` to the successor, and each call is
counted by old path in ``facefleet_legacy_route_calls``.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query
from starlette.datastructures import MutableHeaders
from starlette.types import Message, Receive, Scope, Send

from facefleet.api.deps import CurrentWorker, Reader, State, Uow, WorkerOrAdmin, WorkerSession
from facefleet.api.errors import Conflict, Forbidden, NotFound
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import StrictJsonRoute
from facefleet.api.observability.metrics import metrics_of
from facefleet.api.workers import schemas
from facefleet.api.workers.assignment import MAX_WAIT, AssignmentService
from facefleet.api.workers.paths import WorkerPath
from facefleet.api.workers.queries import WorkerQueries
from facefleet.api.workers.service import WorkerService
from facefleet.protocol.enums import WorkerStatus
from facefleet.protocol.ids import Offset

# Old path template -> successor template.
SUCCESSORS = {
    "/v1/registry/workers/register": "/v1/workers/register",
    "/v1/registry/workers/{worker_id}/heartbeat": "/v1/workers/{worker_id}/heartbeat",
    "/v1/registry/workers": "/v1/workers",
    "/v1/workers/{worker_id}/request-camera": "/v1/workers/{worker_id}/camera/request",
}


class LegacyRoute(StrictJsonRoute):
    """Adds the deprecation headers at the ASGI level, so error responses get them too."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in (self.methods or ()):
            await super().handle(scope, receive, send)
            return
        metrics = metrics_of(scope)
        if metrics is not None:
            metrics.legacy_calls.labels(path=self.path).inc()
        # Quoted: path parameters arrive URL-decoded and must not shape the header.
        params = {k: quote(str(v), safe="") for k, v in scope.get("path_params", {}).items()}
        successor = SUCCESSORS[self.path].format(**params)

        async def deprecating_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Deprecation"] = "true"
                headers.append("Link", f'<{successor}>; rel="successor-version"')
            await send(message)

        await super().handle(scope, receive, deprecating_send)


router = APIRouter(tags=["legacy"], deprecated=True, route_class=LegacyRoute)


@router.post(
    "/v1/registry/workers/register",
    response_model=schemas.RegisterResponse,
    responses=_errors(Forbidden, Conflict),
    summary="Deprecated: use POST /v1/workers/register",
)
async def legacy_register(
    body: schemas.RegisterRequest,
    principal: WorkerOrAdmin,
    state: State,
    uow: Uow,
    session_token: WorkerSession = None,
) -> schemas.RegisterResponse:
    return await WorkerService(state).register(uow, principal, body, session_token)


@router.get(
    "/v1/registry/workers",
    response_model=schemas.WorkerPage,
    responses=_errors(Forbidden),
    summary="Deprecated: use GET /v1/workers",
)
async def legacy_list_workers(
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


@router.post(
    "/v1/workers/{worker_id}/request-camera",
    response_model=schemas.CameraRequestResponse,
    responses=_errors(Forbidden, NotFound),
    summary="Deprecated: use POST /v1/workers/{worker_id}/camera/request",
)
async def legacy_request_camera(
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

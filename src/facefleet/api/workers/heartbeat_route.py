"""``POST /v1/workers/{worker_id}/heartbeat``, defined once, served by straight-line code.

The heartbeat is most of the control plane's traffic (a fleet of N workers sends N/2 per
second), and FastAPI's per-request dependency solving and response re-validation cost several
times the heartbeat's own work. So the route is declared like every other (its signature and
models make its OpenAPI entry) but ``HeartbeatRoute`` answers it with ``serve``: the same key
and session checks, the same request model, the same errors (raised here, rendered by the
app's handlers). The deprecated path of the seed is the same route with the legacy headers.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from facefleet.api.deps import State, WorkerOrAdmin, WorkerSession, authenticate
from facefleet.api.deps import check_worker_or_admin as check_role
from facefleet.api.errors import Forbidden, NotFound
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import invalid_json_errors
from facefleet.api.rate_limits import Budget
from facefleet.api.state import AppState
from facefleet.api.workers.legacy import LegacyRoute
from facefleet.api.workers.paths import WorkerPath
from facefleet.api.workers.service import WorkerService
from facefleet.protocol.ids import WorkerId
from facefleet.protocol.json_values import InvalidJson, loads_strict
from facefleet.protocol.workers import HeartbeatRequest, HeartbeatResponse

PATH = "/v1/workers/{worker_id}/heartbeat"
LEGACY_PATH = "/v1/registry/workers/{worker_id}/heartbeat"
_worker_id = TypeAdapter(WorkerId)
# No body, or JSON null, is a heartbeat without metrics (as ``body: ... | None = None``).
_EMPTY_BODIES = (b"", b"null")


def _invalid(exc: ValidationError, *where: str | int) -> RequestValidationError:
    """The error FastAPI raises for the same input, located the same way."""
    errors: list[dict[str, Any]] = [
        {**err, "loc": (*where, *err["loc"])} for err in exc.errors(include_url=False)
    ]
    return RequestValidationError(errors)


async def serve(request: Request) -> Response:
    state: AppState = request.app.state.facefleet
    authorization = request.headers.get("authorization")
    principal = check_role(await authenticate(state, authorization, Budget.worker))
    try:
        worker_id = _worker_id.validate_python(request.path_params["worker_id"])
    except ValidationError as exc:
        raise _invalid(exc, "path", "worker_id") from exc
    body = (await request.body()).strip()
    try:
        req = (
            HeartbeatRequest()
            if body in _EMPTY_BODIES
            # Strictly, as StrictJsonRoute validates every other body.
            else HeartbeatRequest.model_validate(loads_strict(body), strict=True)
        )
    except InvalidJson as exc:
        raise RequestValidationError(invalid_json_errors(exc)) from exc
    except ValidationError as exc:
        raise _invalid(exc, "body") from exc
    result = await WorkerService(state).heartbeat(
        principal, worker_id, request.headers.get("x-worker-session"), req
    )
    return Response(result.model_dump_json(), media_type="application/json")


class HeartbeatRoute(APIRoute):
    """Documented from the endpoint's signature, answered by ``serve``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return serve


class HeartbeatFirst:
    """In front of the router: a heartbeat is answered before the router walks its routes
    and wraps the handler in its per-request layers. The route matches as the router would
    match it, names itself in the scope (metrics and logs use its template) and raises its
    errors to the app's exception handlers, as a route's are; everything else, a heartbeat
    with the wrong method included (the router's 405), goes on to the router."""

    def __init__(self, router: ASGIApp, route: HeartbeatRoute) -> None:
        self.router = router
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match, child_scope = self.route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)  # the path parameters and the route itself
                response = await serve(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.router(scope, receive, send)


def answer_first(app: FastAPI) -> None:
    """Put ``HeartbeatFirst`` in front of ``app``'s router, for its heartbeat route."""
    (route,) = (r for r in router.routes if isinstance(r, HeartbeatRoute))
    app.router.middleware_stack = HeartbeatFirst(app.router.middleware_stack, route)


class LegacyHeartbeatRoute(LegacyRoute, HeartbeatRoute):
    """The seed's path: the same answers, with the deprecation headers."""


router = APIRouter(tags=["workers"], route_class=HeartbeatRoute)
legacy_router = APIRouter(tags=["legacy"], deprecated=True, route_class=LegacyHeartbeatRoute)


async def heartbeat(
    worker_id: WorkerPath,
    principal: WorkerOrAdmin,
    state: State,
    body: HeartbeatRequest | None = None,
    session_token: WorkerSession = None,
) -> HeartbeatResponse:
    """The parameters and answer of the heartbeat, for OpenAPI: HeartbeatRoute answers the
    route with ``serve`` and never calls this function."""
    raise RuntimeError("the heartbeat is served by heartbeat_route.serve")


router.add_api_route(
    PATH,
    heartbeat,
    methods=["POST"],
    name="worker_heartbeat",
    response_model=HeartbeatResponse,
    responses=_errors(Forbidden, NotFound),
    summary="Renew liveness and leases; learn what to do next",
)
legacy_router.add_api_route(
    LEGACY_PATH,
    heartbeat,
    methods=["POST"],
    name="legacy_heartbeat",
    response_model=HeartbeatResponse,
    responses=_errors(Forbidden, NotFound),
    summary="Deprecated: use POST /v1/workers/{worker_id}/heartbeat",
)

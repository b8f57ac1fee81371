"""``POST /v1/workers/{worker_id}/heartbeat`` as a plain Starlette route.

The heartbeat is most of the control plane's traffic (a fleet of N workers sends N/2 per
second), and FastAPI's per-request dependency solving and response re-validation cost several
times the heartbeat's own work. This route does the same checks in straight-line code: the same
key and session checks, the same request model, the same errors (raised here, rendered by the
app's handlers). The FastAPI route of the same path, registered after it, documents it in
OpenAPI and is never reached.
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from facefleet.api.deps import authenticate, check_worker_or_admin
from facefleet.api.state import AppState
from facefleet.api.workers import schemas
from facefleet.api.workers.service import WorkerService

PATH = "/v1/workers/{worker_id}/heartbeat"
_worker_id = TypeAdapter(schemas.WorkerId)
_EMPTY_BODIES = (b"", b"null")


def _invalid(exc: ValidationError, *where: str | int) -> RequestValidationError:
    """The error FastAPI raises for the same input, located the same way."""
    errors: list[dict[str, Any]] = [
        {**err, "loc": (*where, *err["loc"])} for err in exc.errors(include_url=False)
    ]
    return RequestValidationError(errors)


async def heartbeat(request: Request) -> Response:
    state: AppState = request.app.state.facefleet
    principal = check_worker_or_admin(
        await authenticate(state, request.headers.get("authorization"))
    )
    try:
        worker_id = _worker_id.validate_python(request.path_params["worker_id"])
    except ValidationError as exc:
        raise _invalid(exc, "path", "worker_id") from exc
    body = (await request.body()).strip()
    try:
        req = (
            schemas.HeartbeatRequest()
            if body in _EMPTY_BODIES
            else schemas.HeartbeatRequest.model_validate_json(body)
        )
    except ValidationError as exc:
        raise _invalid(exc, "body") from exc
    result = await WorkerService(state).heartbeat(
        principal, worker_id, request.headers.get("x-worker-session"), req
    )
    return Response(result.model_dump_json(), media_type="application/json")


class _LabelledRoute(Route):
    """Names itself in the scope as FastAPI's routes do, for the HTTP metrics' route label."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


route = _LabelledRoute(PATH, heartbeat, methods=["POST"], name="worker_heartbeat")

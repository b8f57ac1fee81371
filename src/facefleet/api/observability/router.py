"""GET /metrics in the Prometheus text format.

Open by default, like most exporters: keep the port on an internal network or filter the
path at the proxy, since worker counts and route names describe the deployment. With
``FACEFLEET_METRICS_KEY`` set it answers only that key (metrics span every tenant, so no
tenant's key opens it).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from facefleet.api.deps import State
from facefleet.api.errors import Unauthorized
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import StrictJsonRoute

router = APIRouter(tags=["observability"], route_class=StrictJsonRoute)


def check_metrics_key(expected: str | None, authorization: str | None) -> None:
    if expected is None:
        return
    header = authorization or ""
    sent = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Unauthorized(
            "/metrics needs the metrics key: send 'Authorization: Bearer <FACEFLEET_METRICS_KEY>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus metrics"},
        401: _errors()[401],
    },
    summary="Prometheus metrics (the metrics key when one is set, else open)",
)
async def metrics(
    state: State,
    authorization: Annotated[
        str | None, Header(description="Bearer <metrics key>, when one is set")
    ] = None,
) -> Response:
    key = state.settings.metrics_key
    check_metrics_key(None if key is None else key.get_secret_value(), authorization)
    await state.metrics.refresh_workers(state.hot)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

"""GET /metrics in the Prometheus text format.

Unauthenticated, like most exporters: keep the port on an internal network or filter the
path at the proxy, since worker counts and route names describe the deployment.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from facefleet.api.deps import State

router = APIRouter(tags=["observability"])


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (no auth: serve on an internal network only)",
)
async def metrics(state: State) -> Response:
    await state.metrics.refresh_workers(state.hot)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

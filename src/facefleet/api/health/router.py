"""Liveness and readiness probes; unauthenticated so orchestrators can call them."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from facefleet.api.deps import State
from facefleet.api.errors import error_body
from facefleet.api.json_route import StrictJsonRoute

CHECK_TIMEOUT = 2.0

router = APIRouter(tags=["health"], route_class=StrictJsonRoute)


def _failure(exc: BaseException) -> str:
    # The exception's name only: the message may carry hosts or credentials, and this
    # endpoint answers anyone.
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        # Async drivers' adapters wrap the driver's own, more telling exception.
        return type(exc.orig.__cause__ or exc.orig).__name__
    return type(exc).__name__


async def _database(state: State) -> None:
    async with asyncio.timeout(CHECK_TIMEOUT), state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _hot_store(state: State) -> None:
    async with asyncio.timeout(CHECK_TIMEOUT):
        await state.hot.ping()


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database and the hot store answer",
    responses={503: {"description": "NotReady, naming the failing dependency"}},
)
async def readyz(state: State) -> JSONResponse:
    checks: dict[str, str] = {}
    failures: list[str] = []
    for name, label, probe in (
        ("database", "database", _database),
        ("hot_store", "hot store", _hot_store),
    ):
        try:
            await probe(state)
        except Exception as exc:
            checks[name] = "unreachable"
            failures.append(f"{label} unreachable: {_failure(exc)}")
        else:
            checks[name] = "ok"
    if failures:
        body: dict[str, Any] = error_body("NotReady", "; ".join(failures), checks=checks)
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})

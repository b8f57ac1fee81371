"""One error base class and one handler: every expected failure renders as
``{"error": "<Name>", "detail": "..."}`` with its own status code."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from facefleet.api.json_route import refusal_errors
from facefleet.protocol.errors import ErrorBody, ErrorName


class FacefleetError(Exception):
    status_code: int = 400
    # The ``error`` field of the body: the protocol's name where workers rely on it, else
    # the class name.
    name: ClassVar[str] = "FacefleetError"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        self.extra = extra


class Unauthorized(FacefleetError):
    name = ErrorName.unauthorized
    status_code = 401


class Forbidden(FacefleetError):
    name = ErrorName.forbidden
    status_code = 403


class NotFound(FacefleetError):
    name = ErrorName.not_found
    status_code = 404


class WorkerNotFound(NotFound):
    name = ErrorName.worker_not_found


class CameraNotFound(NotFound):
    name = ErrorName.camera_not_found


class Conflict(FacefleetError):
    name = ErrorName.conflict
    status_code = 409


class WorkerIdInUse(Conflict):
    name = ErrorName.worker_id_in_use


class StaleEpoch(Conflict):
    name = ErrorName.stale_epoch


class PayloadTooLarge(FacefleetError):
    name = ErrorName.payload_too_large
    status_code = 413


class ServiceUnavailable(FacefleetError):
    name = ErrorName.service_unavailable
    status_code = 503


ErrorOut = ErrorBody


def error_responses(*errors: type[FacefleetError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route: its expected errors plus 401, 422 and the rate
    limit's 429 (every route that takes a key is paid from a budget: api/rate_limits.py)."""
    out: dict[int | str, dict[str, Any]] = {
        401: _error_response("Unauthorized"),
        422: _error_response("ValidationError"),
        429: {
            **_error_response("TooManyRequests: the API key is over its rate limit"),
            "headers": {
                "Retry-After": {
                    "description": "Seconds until the key may make its next request.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
        },
    }
    for err in errors:
        out[err.status_code] = _error_response(err.name)
    return out


def _error_response(description: str) -> dict[str, Any]:
    # JSON even on routes whose own answer is not (the presence stream, images).
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {
        "model": ErrorOut,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def document_body_limit(app: FastAPI) -> None:
    """Every operation that takes a body may be refused with 413 (``api/body_limit.py``):
    added to each route's documented responses before the schema is first built."""
    for route in api_routes(app.router.routes):
        if route.body_field is not None:
            route.responses.setdefault(413, _error_response(PayloadTooLarge.name))


def error_body(name: str, detail: Any, **extra: Any) -> dict[str, Any]:
    return {"error": name, "detail": detail, **extra}


async def _facefleet_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FacefleetError)
    return JSONResponse(
        error_body(exc.name, exc.detail, **exc.extra),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    refused = refusal_errors(request.scope)
    if refused is not None:  # what the strict body check said, not "not an object"
        errors = [e for e in errors if tuple(e.get("loc", ()))[:1] != ("body",)] + list(refused)
    fields = [
        {"field": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
        for err in errors
    ]
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return JSONResponse(
        error_body(ErrorName.validation_error, summary or "invalid request", fields=fields),
        status_code=422,
    )


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """The app's API routes, those of included routers among them."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from api_routes(inner.routes)
        elif isinstance(route, APIRoute):
            yield route


def allowed_methods(request: Request) -> str:
    """Every method of the request's path: FastAPI makes one route per method, and
    Starlette names only the first route's. A literal path (``/v1/workers/stats``) is its
    own resource, not an instance of a template beside it (``/v1/workers/{worker_id}``)."""
    path = request.scope["path"]
    matching = [r for r in api_routes(request.app.router.routes) if r.path_regex.match(path)]
    if not matching:
        return ""
    fewest = min(r.path_format.count("{") for r in matching)
    methods = {m for r in matching if r.path_format.count("{") == fewest for m in r.methods or ()}
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    names = {
        404: ErrorName.not_found,
        405: ErrorName.method_not_allowed,
        413: ErrorName.payload_too_large,
    }
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return JSONResponse(
        error_body(names.get(exc.status_code, "HTTPError"), exc.detail),
        status_code=exc.status_code,
        headers=headers or None,
    )


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # The database did not answer mid-request: 503 rather than 500, and the connection pool
    # reconnects on a later request.
    return JSONResponse(
        error_body(
            ServiceUnavailable.name,
            f"database unavailable ({type(exc).__name__}); retry shortly",
        ),
        status_code=ServiceUnavailable.status_code,
        headers={"Retry-After": "1"},
    )


async def _hot_store_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # Redis did not answer: the client retries, and the next request reconnects by itself.
    # The exception's name only: its message may carry the Redis address.
    return JSONResponse(
        error_body(
            ServiceUnavailable.name,
            f"hot store unavailable ({type(exc).__name__}); retry shortly",
        ),
        status_code=ServiceUnavailable.status_code,
        headers={"Retry-After": "1"},
    )


CONCURRENT_CHANGE = "a concurrent request changed the same record; retry"


async def _integrity_error(_: Request, exc: Exception) -> JSONResponse:
    # Two requests raced to create the same thing (a name, an idempotency key): the loser
    # gets a conflict, never a 500.
    return JSONResponse(
        error_body(Conflict.name, CONCURRENT_CHANGE), status_code=Conflict.status_code
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FacefleetError, _facefleet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    for redis_error in (RedisConnectionError, RedisTimeoutError):
        app.add_exception_handler(redis_error, _hot_store_unavailable)
    # The async drivers raise ConnectionRefusedError and friends unwrapped when the server
    # is down; a dropped connection surfaces as OperationalError or InterfaceError.
    for database_error in (ConnectionError, OperationalError, InterfaceError):
        app.add_exception_handler(database_error, _database_unavailable)

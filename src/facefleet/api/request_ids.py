"""A request id on every answer, and unexpected errors answered in the API's error shape.

Outermost of the app's middlewares: the id (a sane incoming ``X-Request-ID``, else a new
one) goes on the response and into ``scope`` for the log. An exception nothing else
handled is logged here with its traceback and the id, and answered as
``{"error": "InternalError", "detail": ..., "request_id": ...}`` with status 500, never a
plain-text body or a dropped connection.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facefleet.protocol.errors import ErrorName

log = logging.getLogger(__name__)

HEADER = "X-Request-ID"
SCOPE_KEY = "facefleet.request_id"
# An id a proxy or client chose is kept when it cannot shape a header or a log line.
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# A new id: this process's random prefix and a counter, unique across replicas and restarts
# without a system call per request (uuid4 reads the kernel's random source every time).
_PREFIX: str
_COUNTER: itertools.count[int]


def _reseed() -> None:
    global _PREFIX, _COUNTER
    _PREFIX, _COUNTER = secrets.token_hex(10), itertools.count(1)


_reseed()
os.register_at_fork(after_in_child=_reseed)  # a forked server process gets its own prefix


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):012x}"


def request_id_of(scope: Scope) -> str | None:
    value = scope.get(SCOPE_KEY)
    return value if isinstance(value, str) else None


def _incoming(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE.fullmatch(text) else None
    return None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming(scope) or new_request_id()
        scope[SCOPE_KEY] = request_id
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        started = False

        async def identified_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, identified_send)
        except Exception:
            log.exception(
                "unhandled error in %s %s (request id %s)",
                scope.get("method"),
                _route_template(scope),
                request_id,
            )
            if started:  # the answer is under way: nothing else can be said
                raise
            await _internal_error(scope, receive, send, request_id)


def _route_template(scope: Scope) -> str:
    # The path template, not the path: a path may carry what the log must not show.
    route = scope.get("route")
    return getattr(route, "path", "(unmatched route)")


async def _internal_error(scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
    body = {
        "error": ErrorName.internal_error,
        "detail": f"internal error; the server logged it with request id {request_id}",
        "request_id": request_id,
    }
    await JSONResponse(body, 500, {HEADER: request_id})(scope, receive, send)

"""Refuse oversize request bodies with the JSON error contract, before reading them."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facefleet.protocol.errors import ErrorName


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        upload_max_bytes: int | None = None,
        upload_paths: Callable[[str], bool] = lambda _: False,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes or max_bytes
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_max_bytes if self.upload_paths(scope["path"]) else self.max_bytes
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                await self._refuse(scope, receive, send, limit)
                return
            # The server delivers no more than a declared length: nothing left to watch.
            await self.app(scope, receive, send)
            return
        seen = 0
        started = overflowed = False

        async def limited_receive() -> Message:
            nonlocal seen, overflowed
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    overflowed = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if overflowed:
                # The app answered a body it could not read (FastAPI makes that a 400
                # "error parsing the body"): the answer is the 413, and only it.
                if not started:
                    started = True
                    await self._refuse(scope, receive, send, limit)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        detail = f"request body exceeds {limit} bytes"
        body = {"error": ErrorName.payload_too_large, "detail": detail}
        await JSONResponse(body, 413)(scope, receive, send)

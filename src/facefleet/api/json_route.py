"""Request bodies parsed by ``loads_strict``, their errors reported after the role check.

FastAPI parses a JSON body with ``json.loads`` before any dependency runs: NaN, lone
surrogates and U+0000 get through (and fail later, in a driver or an encoder), while invalid
UTF-8 or a deeply nested body is an undocumented 400 given before the key is even checked.
``StrictJsonRoute`` parses with the protocol's strict parser instead and reports what it
refuses as a 422 from a dependency that runs after the route's own (the key and role
checks), so a caller without the right key learns nothing from the body's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.dependencies.utils import get_dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from facefleet.protocol.json_values import InvalidJson, loads_strict

_REFUSED = "facefleet.invalid_json"


def invalid_json_error(exc: InvalidJson) -> RequestValidationError:
    """The 422 of a body ``loads_strict`` refused."""
    return RequestValidationError(
        [{"type": "json_invalid", "loc": ("body",), "msg": str(exc), "input": None}]
    )


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = loads_strict(await self.body())
            except InvalidJson as exc:
                # Kept for refuse_invalid_json; the body counts as absent until then.
                self.scope[_REFUSED] = exc
                self._json = None
        return self._json


def refuse_invalid_json(request: Request) -> None:
    refused = request.scope.get(_REFUSED)
    if isinstance(refused, InvalidJson):
        raise invalid_json_error(refused)


class StrictJsonRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None:
            # Last: after every dependency of the endpoint (the key and role among them),
            # before the body is validated (FastAPI validates it after the dependencies).
            self.dependant.dependencies.append(
                get_dependant(path=self.path_format, call=refuse_invalid_json)
            )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict

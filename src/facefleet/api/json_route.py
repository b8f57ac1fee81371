"""Request bodies read by the protocol's strict parser and validated strictly, their
refusals (malformed forms among them) reported after the role check.

FastAPI parses a JSON body with ``json.loads`` before any dependency runs, then validates it
leniently: NaN, lone surrogates and U+0000 get through (and fail later, in a driver or an
encoder), ``false`` passes for a number and ``"5"`` for an integer, while invalid UTF-8 or a
deeply nested body is an undocumented 400 given before the key is even checked.
``StrictJsonRoute`` reads the body with ``loads_strict`` and validates it against the
route's body model in pydantic's strict JSON mode (what the OpenAPI schema says). A body
either refuses is replaced by a value no model accepts, so FastAPI reports it where it
validates bodies: after every dependency, the key and role checks among them. The error
handler then shows the refusal's own errors (``refusal_errors``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi.params import Form
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from facefleet.protocol.json_values import InvalidJson, loads_strict

_REFUSED = "facefleet.refused_body"


# Stands for a refused body: no body model validates a string (FastAPI validates bodies
# with from_attributes, so an arbitrary object would pass for a model of optional fields).
REFUSED_BODY = "(refused body)"


def invalid_json_errors(exc: InvalidJson) -> list[dict[str, Any]]:
    """Validation errors (FastAPI's shape) of a body ``loads_strict`` refused."""
    return [{"type": "json_invalid", "loc": ("body",), "msg": str(exc), "input": None}]


def body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]


def refusal_errors(scope: Scope) -> Sequence[dict[str, Any]] | None:
    """The errors of the request's refused body, if it was refused."""
    refused = scope.get(_REFUSED)
    return refused if isinstance(refused, list) else None


class StrictJsonRequest(Request):
    body_adapter: TypeAdapter[Any] | None = None

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            raw = await self.body()
            try:
                value = loads_strict(raw)
                if self.body_adapter is not None:
                    self.body_adapter.validate_json(raw, strict=True)
            except InvalidJson as exc:
                self.scope[_REFUSED] = invalid_json_errors(exc)
                value = REFUSED_BODY
            except ValidationError as exc:
                self.scope[_REFUSED] = body_errors(exc)
                value = REFUSED_BODY
            self._json = value
        return self._json

    async def _get_form(self, **limits: Any) -> FormData:
        # Starlette answers a malformed multipart body with a 400 before any dependency:
        # refused like a JSON body instead (422, after the role check).
        try:
            return await super()._get_form(**limits)
        except HTTPException as exc:
            if exc.status_code != 400:
                raise
            self.scope[_REFUSED] = [
                {"type": "form_invalid", "loc": ("body",), "msg": f"not a valid form: {exc.detail}"}
            ]
            return FormData()


def _body_adapter(route: APIRoute) -> TypeAdapter[Any] | None:
    """The strict validator of the route's JSON body (None: no body, or a form)."""
    field = route.body_field
    if field is None or isinstance(field.field_info, Form):
        return None
    annotation: Any = field.field_info.annotation
    if not field.field_info.is_required():
        annotation = annotation | None
    return TypeAdapter(annotation)


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        adapter = _body_adapter(self)

        async def strict(request: Request) -> Response:
            strict_request = StrictJsonRequest(request.scope, request.receive)
            strict_request.body_adapter = adapter
            return await handler(strict_request)

        return strict

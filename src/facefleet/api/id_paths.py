"""The ``{name:id}`` path convertor: a segment holding an id matches only an integer.

``/v1/webhooks/{webhook_id}`` would otherwise match ``PATCH /v1/webhooks/event-types``
and answer that ``event-types`` is not an integer, where the path names a route that does
not take PATCH (405). A signed integer of any length matches, so range and sign are still
refused with the id type's 422 message (``facefleet.protocol.ids``).
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class IdConvertor(Convertor[str]):
    regex = "-?[0-9]+"

    def convert(self, value: str) -> str:
        return value  # validated (and converted) by the parameter's type

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())

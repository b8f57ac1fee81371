"""JSON values the API accepts: text every store and encoder can hold.

``json.loads`` accepts what no strict JSON reader should: NaN and Infinity, lone UTF-16
surrogates (``"\\ud800"``, which no UTF-8 encoder can write back), and U+0000 (which
PostgreSQL's JSONB refuses). ``loads_strict`` is the one parser of request bodies; the
``JsonObject`` type checks a free-form object the same way wherever one arrives, and
``sanitized`` repairs a value stored before these rules, so readers never fail on it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from facefleet.protocol.ids import INT64_MAX, INT64_MIN

# Deeper bodies are refused; the API's models nest a handful of levels, and
# json.loads itself stops near 1,000.
MAX_DEPTH = 200


class InvalidJson(ValueError):
    """The bytes are not a JSON document the API accepts; the message says why."""


def _no_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not a JSON number")


# Where a value sits, as a chain of (parent, key or index) built as the walk goes down and
# only rendered as "$.a[0].b" for an error: formatting every path up front cost more than
# the checks themselves.
_Where = tuple[Any, str | int] | None


def _render(where: _Where) -> str:
    parts: list[str] = []
    while where is not None:
        where, step = where
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "$" + "".join(reversed(parts))


def _text_problem(text: str) -> str | None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone UTF-16 surrogate is not text"
    return "U+0000 is not allowed in text" if "\x00" in text else None


def check_json_value(value: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` if every string in it (keys included) is encodable text, every number is
    finite (an integer within 64 bits) and it nests at most ``max_depth`` levels; else
    InvalidJson saying where."""
    _check(value, 1, None, max_depth)
    return value


def _check(item: Any, depth: int, where: _Where, max_depth: int) -> None:
    # Recursive (the depth is bounded), leaves checked in the loop: this runs on every
    # heartbeat's metrics and streams.
    if isinstance(item, dict | list):
        if depth > max_depth:
            raise InvalidJson(f"nested deeper than {max_depth} levels")
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in pairs:
            if key.__class__ is str:
                problem = _text_problem(key)
                if problem is not None:
                    raise InvalidJson(f"{_render(where)}: {problem}")
            if isinstance(child, dict | list):
                _check(child, depth + 1, (where, key), max_depth)
            elif child is not None:
                problem = _leaf_problem(child)
                if problem is not None:
                    raise InvalidJson(f"{_render((where, key))}: {problem}")
        return
    problem = _leaf_problem(item)
    if problem is not None:
        raise InvalidJson(f"{_render(where)}: {problem}")


def _leaf_problem(item: Any) -> str | None:
    if isinstance(item, str):
        return _text_problem(item)
    if isinstance(item, float):
        return None if math.isfinite(item) else "numbers must be finite"
    if isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
        return "integers must fit in 64 bits"
    return None


def loads_strict(body: bytes) -> Any:
    """Parse a request body: UTF-8 JSON, checked by ``check_json_value``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJson(f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InvalidJson(f"nested deeper than {MAX_DEPTH} levels") from None
    return check_json_value(value)


def _as_value(value: Any) -> Any:
    try:
        return check_json_value(value)
    except InvalidJson as exc:
        raise ValueError(str(exc)) from None


# The check as a validator of any JSON-shaped field.
JSON_CHECKED = AfterValidator(_as_value)
# A free-form JSON object (attributes, payloads, results).
JsonObject = Annotated[dict[str, Any], JSON_CHECKED]


# A Python string holds a valid surrogate pair as one code point: any surrogate is lone.
_UNENCODABLE = re.compile("[\x00\ud800-\udfff]")


def _clean_text(text: str) -> str:
    if text.isascii() and "\x00" not in text:
        return text
    return _UNENCODABLE.sub("\ufffd", text)


def sanitized(value: Any) -> Any:
    """``value`` with every string made encodable (lone surrogates and U+0000 become
    U+FFFD) and every non-finite number None: for values stored before the rules above."""
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {_clean_text(str(k)): sanitized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sanitized(v) for v in value]
    return value


# What a response shows of a free-form value stored before these rules (worker metrics,
# attributes, payloads): repaired on read.
StoredJson = Annotated[dict[str, Any], BeforeValidator(sanitized)]

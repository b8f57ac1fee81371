"""Points in time the API takes: an RFC 3339 date-time (``Instant``) or Unix seconds
(``UnixTime``), both within the years [1970, 9999), so every one converts to UTC and fits
the database's timestamp columns."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from annotated_types import Gt, Lt
from pydantic import AfterValidator, BeforeValidator, TypeAdapter, ValidationError, WithJsonSchema

MIN_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(9999, 1, 1, tzinfo=UTC)
MAX_UNIX_TIME = MAX_INSTANT.timestamp()
_RANGE = "between 1970-01-01 and 9999-01-01 (UTC)"


_TEXT_ONLY = "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z"
_PARSE = TypeAdapter(datetime)


def _only_text(value: Any) -> datetime:
    # pydantic reads a number (or a numeric string) as Unix seconds; the schema says
    # date-time, so only an ISO 8601 text is one. Parsed here, so that a body validated
    # strictly (which takes no text for a datetime) reads it too.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(_TEXT_ONLY)
    if value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError(f"{_TEXT_ONLY}, not a number")
    try:
        return _PARSE.validate_python(value)
    except ValidationError:
        raise ValueError(_TEXT_ONLY) from None


def _in_range(value: datetime) -> datetime:
    """``value`` in UTC (naive means UTC), if it lies within the range."""
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 is in the year 10000 in UTC
        raise ValueError(f"must be {_RANGE}") from None
    if not MIN_INSTANT <= utc < MAX_INSTANT:
        raise ValueError(f"must be {_RANGE}")
    return utc


Instant = Annotated[
    datetime,
    BeforeValidator(_only_text),
    AfterValidator(_in_range),
    WithJsonSchema({"type": "string", "format": "date-time", "description": f"UTC, {_RANGE}"}),
]


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


# Unix time in seconds, after 1970-01-01 and before 9999-01-01.
UnixTime = Annotated[float, Gt(0), Lt(MAX_UNIX_TIME), AfterValidator(_finite)]

"""Time as the control plane records it."""

from __future__ import annotations

from datetime import UTC, datetime


def to_datetime(ts: float) -> datetime:
    """A timestamp in seconds as an aware UTC datetime, as the database stores times."""
    return datetime.fromtimestamp(ts, UTC)

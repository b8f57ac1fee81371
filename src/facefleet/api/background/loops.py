"""Background loops started in the lifespan: periodic, and never dying of one failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError

from facefleet.api.background.alarm import Alarm

log = logging.getLogger(__name__)

# A database or Redis that does not answer: expected during an outage, retried next pass.
OUTAGES = (
    ConnectionError,
    OperationalError,
    InterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
)


def outage(exc: BaseException) -> str | None:
    """A one-line reason when ``exc`` means a dependency is down, else None."""
    if isinstance(exc, OUTAGES):
        cause = exc.orig if isinstance(exc, OperationalError | InterfaceError) else exc
        return type(cause).__name__
    return None


async def every(
    period: float, action: Callable[[], Awaitable[Any]], name: str, alarm: Alarm | None = None
) -> None:
    """Run ``action`` every ``period`` seconds, or sooner when ``alarm`` goes off."""
    while True:
        try:
            await action()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if (reason := outage(exc)) is not None:
                log.warning("%s pass failed: a dependency is unavailable (%s)", name, reason)
            else:
                log.exception("%s pass failed", name)
        if alarm is None:
            await asyncio.sleep(period)
        else:
            await alarm.wait(period)

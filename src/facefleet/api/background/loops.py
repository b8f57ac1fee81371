"""Background loops started in the lifespan: periodic, and never dying of one failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


async def every(period: float, action: Callable[[], Awaitable[Any]], name: str) -> None:
    while True:
        try:
            await action()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s pass failed", name)
        await asyncio.sleep(period)

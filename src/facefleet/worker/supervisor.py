"""Every loop of the worker runs supervised: a failure is logged and the loop restarted after
a jittered backoff; a loop that keeps failing ends the worker (a non-zero exit), so a broken
worker never lingers as a process that looks alive and does nothing."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger("facefleet.worker")


class LoopFailed(Exception):
    """A loop failed too often in a short time: the worker cannot do its job."""

    def __init__(self, name: str, failures: int, window: float, last: BaseException) -> None:
        super().__init__(
            f"the {name} loop failed {failures} times within {window:.0f}s "
            f"(last: {type(last).__name__}: {last})"
        )
        self.name = name


async def supervise(
    name: str,
    loop: Callable[[], Awaitable[None]],
    *,
    max_failures: int = 5,
    window: float = 60.0,
    backoff: float = 0.5,
    backoff_max: float = 10.0,
) -> None:
    """Run ``loop`` until it returns; restart it when it raises."""
    failures: deque[float] = deque()
    delay = backoff
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            now = time.monotonic()
            failures.append(now)
            while failures and failures[0] < now - window:
                failures.popleft()
            if len(failures) >= max_failures:
                raise LoopFailed(name, len(failures), window, exc) from exc
            log.exception("the %s loop failed; restarting it in %.1fs", name, delay)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(backoff_max, delay * 2)

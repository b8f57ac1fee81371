"""Waiting for an event with a time limit, safely cancellable."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_set(event: asyncio.Event, timeout: float | None) -> bool:  # noqa: ASYNC109
    """Whether ``event`` was set within ``timeout`` seconds (None: no limit).

    Not ``asyncio.wait_for``: on Python 3.11 it can swallow a cancellation that arrives just
    as the event is set, and a loop that was cancelled would then run on.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()

"""An alarm a background loop sleeps on: it runs its next pass at the end of its period, or
sooner when something it has to act on is due earlier (a stranger sighted, a worker whose
presence grace ends before the next reaper pass)."""

from __future__ import annotations

import asyncio
import contextlib


class Alarm:
    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._due: float | None = None  # event-loop time of the earliest request

    def set(self) -> None:
        """Run the next pass now."""
        self.after(0.0)

    def after(self, delay: float) -> None:
        """Run a pass no later than ``delay`` seconds from now."""
        due = asyncio.get_running_loop().time() + max(0.0, delay)
        if self._due is None or due < self._due:
            self._due = due
            self._changed.set()

    async def wait(self, period: float) -> None:
        """Until ``period`` seconds pass or an earlier request falls due; then armed again."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + period
        while (due := min(ends, self._due if self._due is not None else ends)) > loop.time():
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(due):
                    await self._changed.wait()
        self._due = None

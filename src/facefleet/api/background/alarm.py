"""An alarm a background loop sleeps on: it runs its next pass at the end of its period, or
sooner when something it has to act on is due earlier (a stranger sighted, a worker whose
presence grace ends before the next reaper pass).

Every request is kept until a pass at or after its time: one that falls due after the
period ends, or after an earlier request, still wakes the loop on time."""

from __future__ import annotations

import asyncio
import contextlib
import heapq


class Alarm:
    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._due: list[float] = []  # a heap of event-loop times

    def set(self) -> None:
        """Run the next pass now."""
        self.after(0.0)

    def after(self, delay: float) -> None:
        """Run a pass ``delay`` seconds from now, if the period has not brought one by then."""
        due = asyncio.get_running_loop().time() + max(0.0, delay)
        earliest = self._due[0] if self._due else None
        heapq.heappush(self._due, due)
        if earliest is None or due < earliest:
            self._changed.set()

    async def wait(self, period: float) -> None:
        """Until ``period`` seconds pass or a request falls due; the pass that follows serves
        every request due by then."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + period
        while (due := min(ends, self._due[0] if self._due else ends)) > loop.time():
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(due):
                    await self._changed.wait()
        now = loop.time()
        while self._due and self._due[0] <= now:
            heapq.heappop(self._due)

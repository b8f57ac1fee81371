"""Wakes this replica's stranger clusterer when unknown sightings arrive, so a repeat visitor
is grouped in moments rather than at the next periodic pass (other replicas' sightings wait
for that pass)."""

from __future__ import annotations

import asyncio
import contextlib


class ClustererWakeup:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, period: float) -> None:
        """Until woken or ``period`` seconds pass; then armed again."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(period):
                await self._event.wait()
        self._event.clear()

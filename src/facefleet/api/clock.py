"""The one clock that judges leases, and time as the database records it.

A lease is judged by one clock only, never by the wall clock of whichever replica handled a
request (a replica whose clock was stepped by 5 s would otherwise expire a live worker's
camera, or keep a dead worker's camera for 5 s too long):

- in-process (one replica): ``MonotonicClock``, the monotonic clock anchored to the wall
  clock once at start, so a later step of the wall clock changes nothing;
- with Redis (several replicas): ``RedisClock``, Redis's own ``TIME``, read every second
  and advanced between reads by this process's monotonic clock. Every replica reads the
  same server, so they agree to within half a round trip.

Tests replace the clock with a callable they move by hand (``create_app(clock=...)``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Redis TIME is read this often; between reads the monotonic clock advances the estimate.
CALIBRATION_PERIOD = 1.0
# A reading whose round trip took longer than this is discarded: the process may have been
# paused between sending and receiving, so the midpoint says nothing.
MAX_ROUND_TRIP = 0.05


def to_datetime(ts: float) -> datetime:
    """A timestamp in seconds as an aware UTC datetime, as the database stores times."""
    return datetime.fromtimestamp(ts, UTC)


class MonotonicClock:
    """Seconds since the epoch as of start, advanced by the monotonic clock."""

    def __init__(self) -> None:
        self._anchor = time.time() - time.monotonic()

    def __call__(self) -> float:
        return self._anchor + time.monotonic()


RedisTime = Callable[[], Awaitable[tuple[int, int]]]


class RedisClock:
    """Redis's clock, estimated locally: ``TIME`` at the midpoint of the best recent round
    trip, plus the monotonic time elapsed since."""

    def __init__(self, read_time: RedisTime, *, period: float = CALIBRATION_PERIOD) -> None:
        self._read_time = read_time
        self._period = period
        # Until the first reading: this process's wall clock.
        self._offset = time.time() - time.monotonic()
        self.calibrated = False

    def __call__(self) -> float:
        return self._offset + time.monotonic()

    async def calibrate(self, attempts: int = 3) -> bool:
        """Read Redis's clock; keep the reading with the shortest round trip. True if one
        was good enough to use."""
        best: tuple[float, float] | None = None  # (round trip, offset)
        for _ in range(attempts):
            sent = time.monotonic()
            seconds, micros = await self._read_time()
            received = time.monotonic()
            trip = received - sent
            offset = seconds + micros / 1e6 - (sent + received) / 2
            if best is None or trip < best[0]:
                best = (trip, offset)
        if best is None or best[0] > MAX_ROUND_TRIP:
            return False
        if self.calibrated and abs(best[1] - self._offset) > 0.5:
            log.warning("clock moved by %.3fs against Redis's", best[1] - self._offset)
        self._offset = best[1]
        self.calibrated = True
        return True

    async def run(self) -> None:
        """Calibrate every ``period`` until cancelled; a failed read keeps the last offset."""
        while True:
            try:
                await self.calibrate()
            except Exception as exc:  # Redis away: keep the last offset, read again later
                log.debug("could not read Redis's clock: %s", type(exc).__name__)
            await asyncio.sleep(self._period)

"""Posts a camera's sightings to the control plane in batches, in the background.

Sightings are keyed by track_id: a newer report of a track replaces the one still waiting,
so a slow or unreachable control plane costs memory for open tracks, not for every update.
Frame processing never waits on the network.

A StaleEpoch answer means another worker may hold the camera now: the batch is dropped,
nothing more is sent, and ``on_stale`` asks the agent to stop the stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from facefleet.worker.worker_client import (
    ApiError,
    ConnectionFailed,
    Sighting,
    SightingsAccepted,
    StaleEpoch,
)

log = logging.getLogger(__name__)

MAX_BATCH = 500  # the API's limit per request


class SightingsApi(Protocol):
    async def report_sightings(
        self, camera_id: int, epoch: int, sightings: Sequence[Sighting]
    ) -> SightingsAccepted: ...


# Called with (camera_id, epoch); it must not wait for the stream to stop, since stopping
# the stream closes this reporter.
StaleCallback = Callable[[int, int], None]


class SightingReporter:
    def __init__(
        self,
        api: SightingsApi,
        camera_id: int,
        epoch: int,
        on_stale: StaleCallback,
        *,
        flush_interval: float = 1.0,
        max_batch: int = MAX_BATCH,
        max_pending: int = 2000,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be within [1, {MAX_BATCH}]")
        if max_pending < max_batch:
            raise ValueError("max_pending must be at least max_batch")
        self.camera_id = camera_id
        self.epoch = epoch
        self._api = api
        self._on_stale = on_stale
        self._flush_interval = flush_interval
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        # Insertion-ordered: the oldest waiting track goes first and is dropped first.
        self._pending: dict[str, Sighting] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.stale = False
        self.accepted = 0
        self.dropped = 0
        self.failures = 0
        self.last_error = ""

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, sighting: Sighting) -> None:
        """Queue a sighting (replacing a waiting one of the same track); never blocks."""
        if self._closed or self.stale:
            self.dropped += 1
            return
        self._pending.pop(sighting.track_id, None)
        self._pending[sighting.track_id] = sighting
        while len(self._pending) > self._max_pending:
            del self._pending[next(iter(self._pending))]
            self.dropped += 1
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"sightings camera {self.camera_id}")
        if len(self._pending) >= self._max_batch:
            self._wake.set()

    async def flush(self) -> bool:
        """Send everything waiting now, one attempt per batch; True when nothing is left."""
        while self._pending and not self.stale:
            if not await self._send_batch():
                return False
        return not self._pending

    async def aclose(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        """Stop the background loop and make one last bounded attempt to send the rest."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pending and not self.stale:
            try:
                async with asyncio.timeout(timeout):
                    await self.flush()
            except TimeoutError:
                pass
            except Exception:
                log.exception("camera %d: posting the last sightings failed", self.camera_id)
        if self._pending:
            log.warning(
                "camera %d: %d sightings not sent before closing",
                self.camera_id,
                len(self._pending),
            )
            self.dropped += len(self._pending)
            self._pending.clear()

    async def _run(self) -> None:
        delay = self._retry_initial
        while not self.stale:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            self._wake.clear()
            try:
                sent = await self.flush()
            except Exception:
                # The loop must outlive a bug in one batch, or nothing would be sent again.
                log.exception("camera %d: posting sightings failed", self.camera_id)
                sent = False
            if sent:
                delay = self._retry_initial
                continue
            if self.stale:
                return
            # Jittered, so cameras that lost the control plane together do not return together.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(self._retry_max, delay * 2)

    async def _send_batch(self) -> bool:
        batch = list(self._pending.values())[: self._max_batch]
        try:
            result = await self._api.report_sightings(self.camera_id, self.epoch, batch)
        except StaleEpoch as exc:
            self._go_stale(exc)
            return False
        except (ConnectionFailed, ApiError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            if isinstance(exc, ApiError) and not _worth_retrying(exc):
                # The server refused these sightings: sending them again changes nothing.
                log.error("camera %d: sightings refused: %s", self.camera_id, exc)
                self._remove(batch)
                self.dropped += len(batch)
                return True
            log.warning("camera %d: sightings not sent, will retry: %s", self.camera_id, exc)
            return False
        self._remove(batch)
        self.accepted += result.accepted
        return True

    def _remove(self, batch: Sequence[Sighting]) -> None:
        for sent in batch:
            # A newer report of the track that arrived meanwhile stays to be sent.
            if self._pending.get(sent.track_id) is sent:
                del self._pending[sent.track_id]

    def _go_stale(self, exc: StaleEpoch) -> None:
        log.warning(
            "camera %d: epoch %d is stale (%s); dropping %d sightings and stopping the stream",
            self.camera_id,
            self.epoch,
            exc.detail,
            len(self._pending),
        )
        self.stale = True
        self.last_error = str(exc)
        self.dropped += len(self._pending)
        self._pending.clear()
        self._on_stale(self.camera_id, self.epoch)


def _worth_retrying(exc: ApiError) -> bool:
    # 429/503 were already retried by the client; other 5xx may be a passing failure, and
    # 401/403 may be a key or session being rotated. Anything else is about the request.
    return exc.status >= 500 or exc.status in (401, 403, 408, 429)


__all__ = ["MAX_BATCH", "SightingReporter", "SightingsApi", "StaleCallback"]

"""Sightings on their way to the control plane: a durable outbox, sent in the background.

Every sighting goes into the worker's outbox (``LocalStore``) first, under the camera and
the epoch it was seen at, and stays there until the control plane accepted it. A newer
report of a track replaces the waiting one. One sender per worker posts the oldest waiting
sightings in batches of one camera and epoch, in order, whatever happens to the streams: a
worker that fenced itself through an outage, or restarted, sends them once it can. A 409
StaleEpoch means another worker holds the camera at a newer epoch: that epoch's sightings are
dropped (they can never be accepted) and ``on_stale`` stops the stream if it still runs at
that epoch. Frame processing never waits on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from facefleet.worker.local_store import LocalStore, Pending
from facefleet.worker.timeouts import wait_set
from facefleet.worker.worker_client import (
    ApiError,
    ConnectionFailed,
    InvalidRequest,
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


# Called with (camera_id, epoch); it must not wait for the stream to stop.
StaleCallback = Callable[[int, int], None]


class SightingOutbox:
    def __init__(
        self,
        store: LocalStore,
        api: SightingsApi,
        on_stale: StaleCallback | None = None,
        *,
        flush_interval: float = 1.0,
        max_batch: int = MAX_BATCH,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be within [1, {MAX_BATCH}]")
        self.store = store
        self.on_stale = on_stale
        self._api = api
        self._flush_interval = flush_interval
        self._max_batch = max_batch
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._wake = asyncio.Event()
        self.accepted: Counter[tuple[int, int]] = Counter()
        self.dropped: Counter[tuple[int, int]] = Counter()
        self.stale: set[tuple[int, int]] = set()
        self.failures = 0
        self.last_error = ""

    def reporter(self, camera_id: int, epoch: int) -> SightingReporter:
        return SightingReporter(self, camera_id, epoch)

    def submit(self, camera_id: int, epoch: int, sighting: Sighting) -> None:
        """Queue a sighting durably; never blocks on the network."""
        if (camera_id, epoch) in self.stale:
            self.dropped[camera_id, epoch] += 1
            return
        body = sighting.model_dump(mode="json")
        self.store.put_sighting(camera_id, epoch, sighting.track_id, body)
        self._wake.set()

    async def run(self) -> None:
        """Send until cancelled (run it supervised: one failing batch must not stop it)."""
        delay = self._retry_initial
        while True:
            if await self.flush():
                delay = self._retry_initial
                await wait_set(self._wake, self._flush_interval)
                self._wake.clear()
                continue
            # Jittered, so workers that lost the control plane together do not return together.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(self._retry_max, delay * 2)

    async def flush(self) -> bool:
        """Send what is waiting, one attempt per batch; True when nothing is left."""
        while (batch := self.store.next_batch(self._max_batch)) is not None:
            if not await self._send(batch.camera_id, batch.epoch, batch.items):
                return False
        return True

    async def _send(self, camera_id: int, epoch: int, items: list[Pending]) -> bool:
        key = (camera_id, epoch)
        seqs = [item.seq for item in items]
        try:
            batch = [Sighting.model_validate(item.body) for item in items]
            result = await self._api.report_sightings(camera_id, epoch, batch)
        except StaleEpoch as exc:
            dropped = self.store.drop_epoch(camera_id, epoch)
            self.dropped[key] += dropped
            self.stale.add(key)
            self.last_error = str(exc)
            log.warning(
                "camera %d: epoch %d is stale (%s); dropping its %d sightings",
                camera_id,
                epoch,
                exc.detail,
                dropped,
            )
            if self.on_stale is not None:
                self.on_stale(camera_id, epoch)
            return True
        except (ConnectionFailed, ApiError, InvalidRequest, ValueError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            if isinstance(exc, ConnectionFailed) or (
                isinstance(exc, ApiError) and _worth_retrying(exc)
            ):
                log.warning("camera %d: sightings not sent, will retry: %s", camera_id, exc)
                return False
            # Refused as they are: sending them again changes nothing.
            log.error("camera %d: sightings refused: %s", camera_id, exc)
            self.store.sent(seqs)
            self.dropped[key] += len(seqs)
            return True
        self.store.sent(seqs)
        self.accepted[key] += result.accepted
        return True


class SightingReporter:
    """One stream's handle on the outbox, for the face processor."""

    def __init__(self, outbox: SightingOutbox, camera_id: int, epoch: int) -> None:
        self.outbox = outbox
        self.camera_id = camera_id
        self.epoch = epoch

    def submit(self, sighting: Sighting) -> None:
        self.outbox.submit(self.camera_id, self.epoch, sighting)

    async def aclose(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        """One bounded attempt to send the stream's last sightings now; what is left stays
        queued for the outbox's sender."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.outbox.flush()

    @property
    def stale(self) -> bool:
        return (self.camera_id, self.epoch) in self.outbox.stale

    @property
    def pending(self) -> int:
        return self.outbox.store.waiting(self.camera_id)

    @property
    def accepted(self) -> int:
        return self.outbox.accepted[self.camera_id, self.epoch]

    @property
    def dropped(self) -> int:
        return self.outbox.dropped[self.camera_id, self.epoch]

    @property
    def last_error(self) -> str:
        return self.outbox.last_error


def _worth_retrying(exc: ApiError) -> bool:
    # 429/503 were already retried by the client; other 5xx may be a passing failure, and
    # 401/403/404 may be a key or session being rotated or a re-registration under way.
    return exc.status >= 500 or exc.status in (401, 403, 404, 408, 429)


__all__ = ["MAX_BATCH", "SightingOutbox", "SightingReporter", "SightingsApi", "StaleCallback"]

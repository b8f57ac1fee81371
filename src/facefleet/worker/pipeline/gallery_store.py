"""The tenant's gallery as this worker process holds it: fetched once, shared by all cameras.

Reloads are coalesced: however many cameras ask at once (a reload command, a newer version
in a heartbeat), one request goes to the control plane. A failed load keeps the gallery
already held; with none held yet, the next ask retries after ``retry_after`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from facefleet.face.gallery import Gallery, from_wire
from facefleet.worker.worker_client import GalleryData, WorkerClientError

log = logging.getLogger(__name__)


class GalleryError(Exception):
    """The control plane's gallery cannot be used by this worker."""


@dataclass(frozen=True)
class GallerySnapshot:
    gallery: Gallery  # person ids are the API's integer ids, as strings
    version: int
    threshold: float  # the tenant's default
    names: dict[str, str]


def decode_gallery(data: GalleryData, expected_model: str) -> GallerySnapshot:
    if data.model != expected_model:
        # Embeddings of different models are not comparable: matching would be noise.
        raise GalleryError(f"gallery model {data.model!r}, this worker embeds {expected_model!r}")
    try:
        # The control plane's matching rule (ratio, per-person thresholds, negatives) too.
        gallery = from_wire(data)
    except ValueError as exc:
        raise GalleryError(str(exc)) from exc
    return GallerySnapshot(gallery, data.version, data.threshold, dict(data.people))


class GalleryStore:
    def __init__(
        self,
        fetch: Callable[[], Awaitable[GalleryData]],
        expected_model: str,
        *,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._expected_model = expected_model
        self.model = expected_model  # the embedding space of every face this worker makes
        self._retry_after = retry_after
        self._clock = clock
        self._current: GallerySnapshot | None = None
        self._loading: asyncio.Task[GallerySnapshot] | None = None
        self._failed_at: float | None = None
        self.loads = 0
        self.last_error = ""

    @property
    def current(self) -> GallerySnapshot | None:
        return self._current

    async def ready(self) -> GallerySnapshot | None:
        """The gallery, loading it first if none is held (None while it cannot be loaded)."""
        if self._current is not None:
            return self._current
        if (
            self._loading is None
            and self._failed_at is not None
            and self._clock() - self._failed_at < self._retry_after
        ):
            return None
        try:
            return await self.reload()
        except (GalleryError, WorkerClientError):
            return None

    async def reload(self) -> GallerySnapshot:
        """Fetch the gallery now (joining a fetch already under way); raise if it fails."""
        loading = self._loading or self._start_load()
        # Shielded: a caller that gives up (its stream stops) must not cancel the others' load.
        return await asyncio.shield(loading)

    def on_version(self, version: int) -> None:
        """A heartbeat's gallery version: reload in the background when it is not ours."""
        held = self._current.version if self._current is not None else None
        if version == held or self._loading is not None or self._current is None:
            # With nothing held yet, the cameras' own ready() calls do the loading.
            return
        self._start_load()

    def _start_load(self) -> asyncio.Task[GallerySnapshot]:
        self._loading = asyncio.create_task(self._load(), name="gallery load")
        self._loading.add_done_callback(_consume_error)
        return self._loading

    async def _load(self) -> GallerySnapshot:
        try:
            snapshot = decode_gallery(await self._fetch(), self._expected_model)
        except (GalleryError, WorkerClientError) as exc:
            self._failed_at = self._clock()
            self.last_error = str(exc)
            log.warning("could not load the gallery: %s", exc)
            raise
        finally:
            self._loading = None
        self._failed_at = None
        self.last_error = ""
        self.loads += 1
        self._current = snapshot
        log.info(
            "gallery version %d loaded: %d faces of %d people",
            snapshot.version,
            len(snapshot.gallery),
            len(snapshot.names),
        )
        return snapshot


def _consume_error(task: asyncio.Task[GallerySnapshot]) -> None:
    # Logged in _load already; retrieving it keeps asyncio from reporting it again.
    if not task.cancelled():
        task.exception()


__all__ = ["GalleryError", "GallerySnapshot", "GalleryStore", "decode_gallery"]

"""Face recognition on a camera's frames: find, follow, embed when it helps, match, vote,
report sightings."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from facefleet.face.engine import Box
from facefleet.face.gallery import encode_matrix
from facefleet.worker.pipeline.compute import CameraCompute
from facefleet.worker.pipeline.gallery_store import GalleryStore
from facefleet.worker.pipeline.processor import CameraRunner, Guard, MetricValue, Processed
from facefleet.worker.pipeline.reporter import SightingReporter
from facefleet.worker.pipeline.source import Frame, FrameSource, RateMeter
from facefleet.worker.pipeline.tracker import (
    FaceSeen,
    FaceTracker,
    Observation,
    TrackerConfig,
    TrackReport,
)
from facefleet.worker.worker_client import Sighting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualityGate:
    """Faces too small or too blurred to trust for identity.

    They are still tracked (they keep a track alive and count as frames seen) but are not
    embedded and do not vote on who the track is: a track only of such faces is never
    reported.
    """

    min_face_size: int = 32  # shorter side in pixels; the embedding upsamples smaller faces
    # Laplacian variance of the crop. It also falls on large, soft (upscaled) faces, so the
    # default only catches crops with almost no detail, such as heavy motion blur.
    min_sharpness: float = 10.0

    def accepts(self, size: int, sharpness: float) -> bool:
        return size >= self.min_face_size and sharpness >= self.min_sharpness


@dataclass(frozen=True)
class FaceProcessorConfig:
    quality: QualityGate = field(default_factory=QualityGate)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    report_unknown: bool = True  # unknown faces become sightings with person_id None
    send_crops: bool = True
    crop_size: int = 112  # longer side of the JPEG sent with a sighting, in pixels
    close_timeout: float = 2.0  # bound on sending the last sightings when the stream stops
    # A frame whose work cannot start within this many seconds of its capture is dropped.
    frame_budget: float = 1.0
    # Frames taken from the camera and waiting for the one in work (a second's worth at
    # 5 fps); a newer frame arriving when they are full replaces the oldest (dropped,
    # counted), as does one that waited past frame_budget.
    queue_frames: int = 5

    def __post_init__(self) -> None:
        if self.frame_budget <= 0 or self.queue_frames < 1:
            raise ValueError("frame_budget must be positive and queue_frames at least 1")


class FaceProcessor:
    """A camera's FrameProcessor: find faces, follow them, embed the few that need it, match,
    vote per track, report sightings.

    The CPU work runs in the worker's shared pool (``compute``), so the event loop keeps
    heartbeating meanwhile and several cameras use several cores. ``process()`` only queues
    the frame: the camera's frames are worked on in order by a task of their own, so a frame
    that takes longer than the camera's interval (a scene cut, faces to embed) does not make
    the camera skip the next ones; only a camera the worker cannot keep up with drops frames.
    """

    def __init__(
        self,
        compute: CameraCompute,
        gallery: GalleryStore,
        reporter: SightingReporter,
        *,
        threshold: float | None = None,
        config: FaceProcessorConfig | None = None,
        wall_clock: Callable[[], float] = time.time,
        build: str = "",
        embedder: str = "",
    ) -> None:
        self.config = config or FaceProcessorConfig()
        self._compute = compute
        self._gallery = gallery
        self._reporter = reporter
        # The camera's own threshold; None falls back to the tenant's, from the gallery.
        self._threshold = threshold
        self._tracker = FaceTracker(self.config.tracker)
        self._wall_clock = wall_clock
        self._build = build
        self._embedder = embedder
        self._rate = RateMeter()
        self._frames = 0
        self._frames_without_gallery = 0
        self._frames_analyzed = 0
        self._frames_over_budget = 0
        self._frames_still = 0
        self._cuts = 0
        self._faces = 0
        self._faces_low_quality = 0
        self._embeddings = 0
        self._sightings = 0
        self._detect_ms = 0.0
        self._embed_ms = 0.0
        self._latency_ms = 0.0
        self._errors = 0
        self._last_error = ""
        self._queue: asyncio.Queue[Frame] = asyncio.Queue(self.config.queue_frames)
        self._worker: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._guard: Guard | None = None
        self._processed: Processed | None = None
        self._frames_refused = 0

    def use_hooks(self, guard: Guard | None, processed: Processed | None) -> None:
        """The agent's lease check, asked right before a queued frame is worked on (the fence
        may have fallen since it was queued), and its record of each frame done."""
        self._guard = guard
        self._processed = processed

    @property
    def tracker(self) -> FaceTracker:
        return self._tracker

    async def process(self, frame: Frame) -> None:
        self._frames += 1
        self._rate.tick(time.monotonic())
        if self._closing is not None:
            return
        if self._queue.full():
            self._queue.get_nowait()  # the worker is behind: the oldest waiting frame goes
            self._queue.task_done()
            self._frames_over_budget += 1
        self._queue.put_nowait(frame)
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="face processor")

    async def idle(self) -> None:
        """Wait until every frame given so far has been worked on."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            frame = await self._queue.get()
            try:
                if self._guard is not None and not self._guard(frame):
                    self._frames_refused += 1
                    continue
                started = time.time()
                await self._analyze(frame)
                if self._processed is not None:
                    self._processed(frame, started)
            except Exception as exc:
                self._errors += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.exception("face processing failed on frame %d", frame.seq)
            finally:
                self._queue.task_done()

    async def _analyze(self, frame: Frame) -> None:
        snapshot = await self._gallery.ready()
        if snapshot is None:
            # Matching against nothing would report every enrolled person as unknown.
            self._frames_without_gallery += 1
            return
        threshold = self._threshold if self._threshold is not None else snapshot.threshold
        hints = [Box(b.left, b.top, b.right, b.bottom) for b in self._tracker.boxes()]
        deadline = frame.captured_at + self.config.frame_budget
        found = await self._compute.find(frame.image, hints, deadline)
        if found is None:
            self._frames_over_budget += 1
            return
        if self._closing is not None:
            return  # the stream stopped while this frame was searched
        self._detect_ms = _smoothed(self._detect_ms, found.cpu_ms, self._frames_analyzed)
        self._frames_analyzed += 1
        self._frames_still += not found.motion and not hints
        # The moment the frame was captured, on the wall clock the control plane shows.
        seen_at = self._wall_clock() - (time.monotonic() - frame.captured_at)
        gate = self.config.quality
        boxes = [detection.box for detection in found.detections]
        faces = []
        for box, sharpness in zip(boxes, found.sharpness, strict=True):
            votes = gate.accepts(min(box.width, box.height), sharpness)
            self._faces_low_quality += not votes
            faces.append(FaceSeen(box, sharpness, votes))
        self._faces += len(faces)
        planned = self._tracker.plan(faces, seen_at, cut=found.cut)
        self._cuts += found.cut
        wanted = [index for index, entry in enumerate(planned) if entry.embed]
        observations: list[Observation | None] = [None] * len(planned)
        if wanted:
            started = time.perf_counter()
            embeddings = await self._compute.embed(frame.image, [boxes[index] for index in wanted])
            matches = snapshot.gallery.match(embeddings, threshold)
            elapsed_ms = (time.perf_counter() - started) * 1000 / len(wanted)
            self._embed_ms = _smoothed(self._embed_ms, elapsed_ms, self._embeddings)
            self._embeddings += len(wanted)
            for index, embedding, match in zip(wanted, embeddings, matches, strict=True):
                box, sharpness = boxes[index], faces[index].sharpness
                crop = _crop_view(frame.image, box) if self.config.send_crops else None
                observations[index] = Observation(
                    box, embedding, match.person_id, match.distance, True, crop, sharpness
                )
            if self._closing is not None:
                return
        self._latency_ms = (time.monotonic() - frame.captured_at) * 1000
        self._emit(self._tracker.commit(planned, observations, seen_at))
        self._emit(self._tracker.due(seen_at))

    def _emit(self, reports: Sequence[TrackReport]) -> None:
        for report in reports:
            if report.person_id is None and not self.config.report_unknown:
                continue
            self._reporter.submit(self._sighting(report))
            self._sightings += 1

    def _sighting(self, report: TrackReport) -> Sighting:
        crop = None
        if report.crop is not None:
            crop = _jpeg_b64(report.crop, self.config.crop_size)
        return Sighting(
            track_id=report.track_id,
            person_id=int(report.person_id) if report.person_id is not None else None,
            first_seen=report.first_seen,
            last_seen=report.last_seen,
            best_distance=report.best_distance,
            frames=report.frames,
            crop_jpeg_b64=crop,
            embedding_b64=None
            if report.embedding is None
            else encode_matrix(report.embedding[None]),
            embedding_model=None if report.embedding is None else self._gallery.model,
        )

    async def reload_gallery(self) -> None:
        await self._gallery.reload()

    def on_gallery_version(self, version: int) -> None:
        self._gallery.on_version(version)

    async def aclose(self) -> None:
        """End every track, report them and flush; shared by concurrent callers."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()  # frames still queued belong to a stream that stopped
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._compute.close()
        self._emit(self._tracker.finish())
        await self._reporter.aclose(self.config.close_timeout)

    def metrics(self) -> dict[str, MetricValue]:
        snapshot = self._gallery.current
        reporter = self._reporter
        return {
            "frames_processed": self._frames,
            "frames_refused": self._frames_refused,
            "fps": round(self._rate.rate(time.monotonic()), 2),
            "frames_analyzed": self._frames_analyzed,
            "analysis_errors": self._errors,
            "last_analysis_error": self._last_error,
            "frames_without_gallery": self._frames_without_gallery,
            # Frames the worker had no time for: dropped unprocessed, past frame_budget.
            "frames_dropped_budget": self._frames_over_budget,
            "frames_still": self._frames_still,
            "scene_cuts": self._cuts,
            "detect_ms": round(self._detect_ms, 1),
            "embed_ms": round(self._embed_ms, 1),
            "latency_ms": round(self._latency_ms, 1),
            "faces_detected": self._faces,
            "faces_low_quality": self._faces_low_quality,
            "faces_embedded": self._embeddings,
            "tracks_open": len(self._tracker),
            "sightings_emitted": self._sightings,
            "sightings_reported": reporter.accepted,
            "sightings_pending": reporter.pending,
            "sightings_dropped": reporter.dropped,
            "gallery_size": len(snapshot.gallery) if snapshot is not None else 0,
            "gallery_version": snapshot.version if snapshot is not None else -1,
            "last_report_error": reporter.last_error,
            "last_gallery_error": self._gallery.last_error,
            "dlib_build": self._build,
            "embedder": self._embedder,
        }


class FaceCameraRunner(CameraRunner):
    """A CameraRunner that sends a stopping stream's last sightings before it lets go."""

    processor: FaceProcessor

    def __init__(
        self, source: FrameSource, processor: FaceProcessor, target_fps: float | None
    ) -> None:
        super().__init__(source, processor, target_fps)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            # For a source that ended on its own; after a stop() this joins the same close.
            await self.processor.aclose()

    async def stop(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        # The stream stops first, so no frame is processed after its last sightings.
        finished = await super().stop(max(0.0, timeout - self.processor.config.close_timeout))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.1, deadline - loop.time())):
                await self.processor.aclose()
        return finished


def _smoothed(current: float, sample: float, samples_so_far: int) -> float:
    # One slow frame should not make the heartbeat's figure jump.
    weight = 1.0 if samples_so_far == 0 else 0.2
    return current + weight * (sample - current)


def _crop_view(image: npt.NDArray[np.uint8], box: Box) -> npt.NDArray[np.uint8]:
    """The face with a margin, as a view into the frame (copied only if it is kept)."""
    height, width = image.shape[:2]
    pad = max(box.width, box.height) // 5
    return image[
        max(0, box.top - pad) : min(height, box.bottom + pad),
        max(0, box.left - pad) : min(width, box.right + pad),
    ]


def _jpeg_b64(crop_bgr: npt.NDArray[np.uint8], size: int) -> str | None:
    height, width = crop_bgr.shape[:2]
    if height == 0 or width == 0:
        return None
    scale = min(1.0, size / max(height, width))
    if scale < 1.0:
        crop_bgr = np.asarray(
            cv2.resize(
                crop_bgr,
                (max(1, round(width * scale)), max(1, round(height * scale))),
                interpolation=cv2.INTER_AREA,
            ),
            dtype=np.uint8,
        )
    ok, jpeg = cv2.imencode(".jpg", crop_bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return base64.b64encode(jpeg.tobytes()).decode("ascii") if ok else None


__all__ = [
    "FaceCameraRunner",
    "FaceProcessor",
    "FaceProcessorConfig",
    "QualityGate",
]

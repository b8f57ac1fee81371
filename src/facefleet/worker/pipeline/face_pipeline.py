"""The face pipeline of one worker process: one compute pool and one gallery shared by all its
cameras, and a runner per camera."""

from __future__ import annotations

import asyncio
import logging
from typing import TypeGuard, cast

from facefleet.face.detectors import DetectorName, yunet_available
from facefleet.face.engine import MODEL_NAME
from facefleet.face.finder import FinderConfig
from facefleet.face.motion import MotionConfig
from facefleet.worker.config import WorkerSettings
from facefleet.worker.pipeline.compute import (
    AnalyzerCompute,
    ComputeSpec,
    FaceAnalyzer,
    FaceCompute,
    ProcessCompute,
    ThreadCompute,
    available_cores,
)
from facefleet.worker.pipeline.face_processor import (
    FaceCameraRunner,
    FaceProcessor,
    FaceProcessorConfig,
    QualityGate,
)
from facefleet.worker.pipeline.gallery_store import GalleryStore
from facefleet.worker.pipeline.reporter import SightingOutbox
from facefleet.worker.pipeline.source import FrameSource
from facefleet.worker.pipeline.tracker import TrackerConfig
from facefleet.worker.worker_client import Assignment, WorkerClient

log = logging.getLogger("facefleet.worker")


def processor_config(settings: WorkerSettings) -> FaceProcessorConfig:
    return FaceProcessorConfig(
        quality=QualityGate(
            min_face_size=settings.min_face_size, min_sharpness=settings.min_sharpness
        ),
        tracker=TrackerConfig(
            max_gap=settings.track_max_gap,
            update_every=settings.sighting_update_interval,
            recheck_every=settings.face_recheck_interval,
        ),
        report_unknown=settings.report_unknown,
        send_crops=settings.send_crops,
        frame_budget=settings.frame_budget,
    )


def detector_name(settings: WorkerSettings) -> DetectorName:
    """The detector a worker uses: ``auto`` picks YuNet proposals confirmed by HOG where the
    yuface wheel exists (the cheapest for the same faces, docs/performance.md), else HOG."""
    if settings.face_detector != "auto":
        return settings.face_detector
    return "yunet-hog" if yunet_available() else "hog"


def compute_spec(settings: WorkerSettings) -> ComputeSpec:
    return ComputeSpec(
        detector=detector_name(settings),
        embedder=settings.face_embedder,
        finder=FinderConfig(
            min_face=settings.face_search_min_size,
            pixel_budget=settings.face_pixel_budget,
            use_motion=settings.motion_gate,
            motion=MotionConfig(threshold=settings.motion_threshold),
        ),
    )


async def load_engine(settings: WorkerSettings) -> FaceCompute:
    """Start the worker's face compute pool (its processes load the models: a few seconds)."""
    spec = compute_spec(settings)
    processes = settings.face_processes
    compute: ProcessCompute | ThreadCompute
    if processes == 0:
        compute = await asyncio.to_thread(ThreadCompute, spec)
    else:
        compute = ProcessCompute(spec, processes or available_cores())
        await asyncio.to_thread(compute.start)
    log.info("face pipeline: %s", compute.description)
    return compute


class FacePipeline:
    """Builds each camera's runner; ``runner`` is the agent's runner factory. Sightings go
    to the worker's outbox.

    ``engine`` is the worker's compute pool (load_engine), or anything with FaceEngine's
    ``analyze()``, which then finds and embeds every face of every frame.
    """

    def __init__(
        self,
        client: WorkerClient,
        engine: FaceCompute | FaceAnalyzer,
        outbox: SightingOutbox,
        config: FaceProcessorConfig | None = None,
        *,
        expected_model: str = MODEL_NAME,
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.compute: FaceCompute
        if _is_compute(engine):
            self.compute = engine
        else:
            self.compute = AnalyzerCompute(cast(FaceAnalyzer, engine))
        self.config = config or FaceProcessorConfig()
        self.gallery = GalleryStore(client.get_gallery, expected_model)

    def runner(self, assignment: Assignment) -> FaceCameraRunner:
        reporter = self.outbox.reporter(assignment.camera_id, assignment.epoch)
        processor = FaceProcessor(
            self.compute.camera(),
            self.gallery,
            reporter,
            threshold=assignment.match_threshold,
            config=self.config,
            build=self.compute.build,
            embedder=self.compute.embedder,
        )
        return FaceCameraRunner(
            FrameSource(assignment.source_url), processor, assignment.target_fps
        )


def _is_compute(engine: FaceCompute | FaceAnalyzer) -> TypeGuard[FaceCompute]:
    return callable(getattr(engine, "camera", None))


__all__ = ["FacePipeline", "compute_spec", "detector_name", "load_engine", "processor_config"]

"""The face pipeline of one worker process: one engine and one gallery, a runner per camera."""

from __future__ import annotations

import asyncio

from facefleet.face.engine import MODEL_NAME, FaceEngine
from facefleet.worker.config import WorkerSettings
from facefleet.worker.pipeline.face_processor import (
    FaceAnalyzer,
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


def processor_config(settings: WorkerSettings) -> FaceProcessorConfig:
    return FaceProcessorConfig(
        quality=QualityGate(
            min_face_size=settings.min_face_size, min_sharpness=settings.min_sharpness
        ),
        tracker=TrackerConfig(
            max_gap=settings.track_max_gap, update_every=settings.sighting_update_interval
        ),
        report_unknown=settings.report_unknown,
        send_crops=settings.send_crops,
    )


async def load_engine(settings: WorkerSettings) -> FaceEngine:
    """The models take a moment to load: in a thread, once per process."""
    return await asyncio.to_thread(
        FaceEngine,
        detector=settings.face_detector,
        upsample=settings.face_upsample,
        max_detection_width=settings.face_detection_width,
    )


class FacePipeline:
    """Builds each camera's runner; ``runner`` is the agent's runner factory. Sightings go
    to the worker's outbox."""

    def __init__(
        self,
        client: WorkerClient,
        engine: FaceAnalyzer,
        outbox: SightingOutbox,
        config: FaceProcessorConfig | None = None,
        *,
        expected_model: str = MODEL_NAME,
    ) -> None:
        self.client = client
        self.engine = engine
        self.outbox = outbox
        self.config = config or FaceProcessorConfig()
        self.gallery = GalleryStore(client.get_gallery, expected_model)

    def runner(self, assignment: Assignment) -> FaceCameraRunner:
        reporter = self.outbox.reporter(assignment.camera_id, assignment.epoch)
        processor = FaceProcessor(
            self.engine,
            self.gallery,
            reporter,
            threshold=assignment.match_threshold,
            config=self.config,
        )
        return FaceCameraRunner(
            FrameSource(assignment.source_url), processor, assignment.target_fps
        )


__all__ = ["FacePipeline", "load_engine", "processor_config"]

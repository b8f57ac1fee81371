"""The face processor with a scripted detector and gallery: gate, match, track, report."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from facefleet.demo.video import make_demo_video
from facefleet.face.engine import Box, Face
from facefleet.worker.local_store import LocalStore
from facefleet.worker.pipeline.compute import AnalyzerCompute
from facefleet.worker.pipeline.face_processor import (
    FaceCameraRunner,
    FaceProcessor,
    FaceProcessorConfig,
    QualityGate,
)
from facefleet.worker.pipeline.gallery_store import GalleryError, GalleryStore, decode_gallery
from facefleet.worker.pipeline.reporter import SightingOutbox
from facefleet.worker.pipeline.source import Frame, FrameSource
from facefleet.worker.worker_client import (
    ConnectionFailed,
    GalleryData,
    Sighting,
    SightingsAccepted,
)
from tests.fixtures.waiting import until

MODEL = "dlib_resnet_v1"
LIN, OBAMA = 7, 9


def unit(seed: int) -> npt.NDArray[np.float32]:
    vector = np.random.default_rng(seed).normal(size=128)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


EMBEDDINGS = {LIN: unit(1), OBAMA: unit(2)}
STRANGER = unit(3)


def gallery_data(version: int = 1, threshold: float = 0.6, model: str = MODEL) -> GalleryData:
    matrix = np.stack([EMBEDDINGS[LIN], EMBEDDINGS[OBAMA]]).astype("<f4")
    return GalleryData(
        version=version,
        model=model,
        threshold=threshold,
        dim=128,
        person_ids=[LIN, OBAMA],
        people={str(LIN): "Lin", str(OBAMA): "Obama"},
        embeddings_b64=base64.b64encode(matrix.tobytes()).decode(),
    )


@dataclass
class FakeControlPlane:
    """Serves the gallery (or fails to) and records posted sightings."""

    galleries: list[GalleryData | Exception] = field(default_factory=lambda: [gallery_data()])
    fetches: int = 0
    posted: list[Sighting] = field(default_factory=list)

    async def get_gallery(self) -> GalleryData:
        self.fetches += 1
        answer = self.galleries[0] if len(self.galleries) == 1 else self.galleries.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def report_sightings(
        self, camera_id: int, epoch: int, sightings: Sequence[Sighting]
    ) -> SightingsAccepted:
        self.posted.extend(sightings)
        return SightingsAccepted(accepted=len(sightings), ids=[])


@dataclass
class ScriptedEngine:
    """Finds the given faces in every frame."""

    faces: list[Face]
    calls: int = 0

    def analyze(self, frame_rgb: npt.NDArray[np.uint8]) -> list[Face]:
        assert frame_rgb.ndim == 3
        self.calls += 1
        return list(self.faces)


def face(
    embedding: npt.NDArray[np.float32],
    *,
    offset: float = 0.0,
    left: int = 100,
    size: int = 80,
    sharpness: float = 300.0,
) -> Face:
    shifted = embedding.copy()
    shifted[0] += offset  # moves the face this far from its enrolled embedding
    box = Box(left, 50, left + size, 50 + size)
    return Face(box=box, embedding=shifted, score=1.0, sharpness=sharpness, size=size)


def frame(seq: int) -> Frame:
    image = np.full((240, 320, 3), 128, dtype=np.uint8)
    return Frame(seq=seq, image=image, captured_at=time.monotonic())


def make_processor(
    cp: FakeControlPlane,
    engine: ScriptedEngine,
    *,
    threshold: float | None = None,
    config: FaceProcessorConfig | None = None,
    store: GalleryStore | None = None,
) -> FaceProcessor:
    reporter = SightingOutbox(LocalStore(":memory:"), cp).reporter(1, 1)
    return FaceProcessor(
        AnalyzerCompute(engine).camera(),
        store or GalleryStore(cp.get_gallery, MODEL),
        reporter,
        threshold=threshold,
        config=config,
    )


async def feed(processor: FaceProcessor, frames: int) -> None:
    for seq in range(1, frames + 1):
        await processor.process(frame(seq))
        await processor.idle()


async def test_a_known_face_becomes_one_sighting_with_a_crop() -> None:
    cp = FakeControlPlane()
    processor = make_processor(cp, ScriptedEngine([face(EMBEDDINGS[LIN], offset=0.3)]))
    before = time.time()
    await feed(processor, 6)
    metrics = processor.metrics()
    assert (metrics["frames_processed"], metrics["faces_detected"]) == (6, 6)
    assert (metrics["tracks_open"], metrics["gallery_size"], metrics["gallery_version"]) == (
        1,
        2,
        1,
    )
    await processor.aclose()
    [seen] = cp.posted
    assert (seen.person_id, seen.frames) == (LIN, 6)
    assert seen.best_distance == pytest.approx(0.3, abs=1e-4)
    assert before - 1 <= seen.first_seen <= seen.last_seen <= time.time()
    assert seen.crop_jpeg_b64 is not None
    jpeg = base64.b64decode(seen.crop_jpeg_b64)
    assert len(jpeg) < 64 * 1024
    crop = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert crop is not None and max(crop.shape[:2]) <= 112
    assert processor.metrics()["sightings_reported"] == 1


async def test_unknown_faces_are_reported_unless_disabled() -> None:
    for report_unknown, expected in ((True, [None]), (False, [])):
        cp = FakeControlPlane()
        config = FaceProcessorConfig(report_unknown=report_unknown, send_crops=False)
        processor = make_processor(cp, ScriptedEngine([face(STRANGER)]), config=config)
        await feed(processor, 4)
        await processor.aclose()
        assert [s.person_id for s in cp.posted] == expected
        assert all(s.crop_jpeg_b64 is None and s.best_distance is None for s in cp.posted)
        # The track's embedding goes along: the control plane clusters strangers by it.
        for sighting in cp.posted:
            assert sighting.embedding_b64 is not None and sighting.embedding_model == MODEL
            sent = np.frombuffer(base64.b64decode(sighting.embedding_b64), dtype="<f4")
            np.testing.assert_allclose(sent, STRANGER, atol=1e-6)


async def test_the_cameras_threshold_overrides_the_tenants() -> None:
    cp = FakeControlPlane()
    engine = ScriptedEngine([face(EMBEDDINGS[LIN], offset=0.5)])
    processor = make_processor(cp, engine, threshold=0.4)  # the tenant's is 0.6
    await feed(processor, 3)
    await processor.aclose()
    assert [s.person_id for s in cp.posted] == [None]


async def test_faces_failing_the_quality_gate_do_not_make_sightings() -> None:
    cp = FakeControlPlane()
    faces = [face(EMBEDDINGS[LIN], size=30), face(EMBEDDINGS[OBAMA], left=200, sharpness=2.0)]
    config = FaceProcessorConfig(quality=QualityGate(min_face_size=40, min_sharpness=10.0))
    processor = make_processor(cp, ScriptedEngine(faces), config=config)
    await feed(processor, 5)
    metrics = processor.metrics()
    assert (metrics["faces_detected"], metrics["faces_low_quality"]) == (10, 10)
    assert metrics["tracks_open"] == 2
    await processor.aclose()
    assert cp.posted == []


async def test_no_frame_is_analysed_until_the_gallery_loads() -> None:
    cp = FakeControlPlane(galleries=[ConnectionFailed("down"), gallery_data()])
    engine = ScriptedEngine([face(EMBEDDINGS[LIN])])
    store = GalleryStore(cp.get_gallery, MODEL, retry_after=0.05)
    processor = make_processor(cp, engine, store=store)
    await feed(processor, 3)  # one failed fetch, then no retry within retry_after
    assert (cp.fetches, engine.calls, processor.metrics()["frames_without_gallery"]) == (1, 0, 3)
    assert "down" in str(processor.metrics()["last_gallery_error"])
    await asyncio.sleep(0.06)
    await feed(processor, 1)
    assert (cp.fetches, engine.calls) == (2, 1)
    await processor.aclose()


async def test_a_newer_gallery_version_is_loaded_once_for_all_cameras() -> None:
    cp = FakeControlPlane(galleries=[gallery_data(version=1), gallery_data(version=2)])
    store = GalleryStore(cp.get_gallery, MODEL)
    engine = ScriptedEngine([])
    processors = [make_processor(cp, engine, store=store) for _ in range(3)]
    await asyncio.gather(*(p.process(frame(1)) for p in processors))
    await asyncio.gather(*(p.idle() for p in processors))
    assert cp.fetches == 1
    for processor in processors:
        processor.on_gallery_version(1)  # what we hold: nothing to do
    assert cp.fetches == 1
    for processor in processors:
        processor.on_gallery_version(2)
    await asyncio.sleep(0.01)
    assert cp.fetches == 2
    assert {p.metrics()["gallery_version"] for p in processors} == {2}
    await processors[0].reload_gallery()  # the reload_gallery command
    assert cp.fetches == 3


def test_a_gallery_of_another_model_or_shape_is_refused() -> None:
    assert len(decode_gallery(gallery_data(), MODEL).gallery) == 2
    with pytest.raises(GalleryError, match="model"):
        decode_gallery(gallery_data(model="arcface"), MODEL)
    truncated = gallery_data().model_copy(update={"embeddings_b64": base64.b64encode(b"x" * 12)})
    with pytest.raises(GalleryError, match="bytes"):
        decode_gallery(truncated, MODEL)
    empty = gallery_data().model_copy(update={"person_ids": [], "people": {}, "embeddings_b64": ""})
    assert len(decode_gallery(empty, MODEL).gallery) == 0


async def test_stopping_the_runner_reports_the_open_tracks(tmp_path: Path) -> None:
    video = make_demo_video(tmp_path / "demo.avi", seconds=1, fps=15, size=(160, 120))
    cp = FakeControlPlane()
    processor = make_processor(cp, ScriptedEngine([face(EMBEDDINGS[OBAMA], size=60, left=10)]))
    runner = FaceCameraRunner(FrameSource(f"file://{video}"), processor, 10)
    task = asyncio.create_task(runner.run())
    await until(lambda: sum(t.frames for t in processor.tracker.tracks) >= 3, 10, "faces")
    assert cp.posted == []  # the track is still open
    assert await runner.stop(3.0)
    await task
    [seen] = cp.posted
    assert seen.person_id == OBAMA and seen.frames >= 3


async def test_a_frame_older_than_the_budget_is_dropped_and_counted() -> None:
    cp = FakeControlPlane()
    engine = ScriptedEngine([face(EMBEDDINGS[LIN])])
    processor = make_processor(cp, engine, config=FaceProcessorConfig(frame_budget=0.5))
    stale = Frame(seq=1, image=frame(1).image, captured_at=time.monotonic() - 2.0)
    await processor.process(stale)
    await processor.idle()
    await feed(processor, 2)
    metrics = processor.metrics()
    assert (metrics["frames_processed"], metrics["frames_dropped_budget"]) == (3, 1)
    assert (engine.calls, metrics["frames_analyzed"]) == (2, 2)
    await processor.aclose()


@dataclass
class SlowEngine(ScriptedEngine):
    seconds: float = 0.05
    seen: list[int] = field(default_factory=list)

    def analyze(self, frame_rgb: npt.NDArray[np.uint8]) -> list[Face]:
        time.sleep(self.seconds)
        self.seen.append(int(frame_rgb[0, 0, 0]))
        return super().analyze(frame_rgb)


async def test_a_camera_the_worker_cannot_keep_up_with_drops_its_oldest_frames() -> None:
    cp = FakeControlPlane()
    engine = SlowEngine([face(EMBEDDINGS[LIN])])
    processor = make_processor(cp, engine, config=FaceProcessorConfig(queue_frames=2))
    for seq in range(1, 11):  # ten frames at once: far faster than 50 ms each
        image = np.full((240, 320, 3), seq, dtype=np.uint8)
        await processor.process(Frame(seq=seq, image=image, captured_at=time.monotonic()))
    await processor.idle()
    metrics = processor.metrics()
    dropped = int(metrics["frames_dropped_budget"])
    assert dropped >= 6 and dropped + int(metrics["frames_analyzed"]) == 10
    assert engine.seen == sorted(engine.seen) and engine.seen[-1] == 10  # in order, the newest
    await processor.aclose()

"""Recall at the sizes real cameras see: fixture faces composited into a moving 1920x1080
stream with face boxes 40, 60, 80 and 120 pixels wide. At the worker's default settings
every person is sighted at every size, and nobody is taken for someone else."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from facefleet.face.images import load_image_rgb
from facefleet.face.synthetic_stream import CompositeStream, FaceSprite, cut_sprite
from facefleet.worker.config import WorkerSettings
from facefleet.worker.pipeline.compute import ProcessCompute
from facefleet.worker.pipeline.face_pipeline import compute_spec, processor_config
from tests.fixtures.face_data import require_fixtures
from tests.worker.recognition_harness import enrollment_engine, recognize

# Photos other than the enrolled ones, so recognition is tested, not recall of a copy.
PROBES = {
    "barack_obama": "barack_obama_2.jpg",
    "joe_biden": "joe_biden_2.jpg",
    "kit_harington": "kit_harington_2.jpg",
    "rose_leslie": "rose_leslie_2.jpg",
}
FPS = 5.0
FRAMES = 15  # three seconds of stream per size


@functools.cache
def sprites() -> tuple[FaceSprite, ...]:
    probe_dir = require_fixtures() / "faces" / "probe"
    cut = []
    for person, photo in PROBES.items():
        rgb = load_image_rgb((probe_dir / photo).read_bytes())
        [face] = [f for f in enrollment_engine().analyze(rgb) if f.score >= 0.5]
        bgr = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)
        cut.append(cut_sprite(person, bgr, face.box))
    return tuple(cut)


# The worker's defaults, and HOG alone (the default where the yuface wheel does not exist).
SETTINGS = {"default": WorkerSettings(), "hog": WorkerSettings(face_detector="hog")}


@pytest.fixture(scope="module", params=list(SETTINGS))
def compute(request: pytest.FixtureRequest) -> Iterator[ProcessCompute]:
    pool = ProcessCompute(compute_spec(SETTINGS[request.param]), processes=1)
    pool.start()
    yield pool
    pool.stop()


@pytest.mark.parametrize("face_width", [40, 60, 80, 120])
async def test_every_person_is_sighted_at_every_size(
    compute: ProcessCompute, face_width: int
) -> None:
    stream = CompositeStream(sprites(), face_width, fps=FPS)
    frames = [(index / FPS, stream.frame(index)) for index in range(FRAMES)]
    truth = stream.truth(0)
    assert {b.width for b in truth.values()} == {face_width}
    seen, processor = await recognize(compute, frames, processor_config(WorkerSettings()))
    known = {s.person for s in seen if s.person is not None}
    assert known == set(PROBES), seen  # everyone, and no one else
    # One sighting per person: each face is followed the whole way, not found piecemeal.
    assert len([s for s in seen if s.person is not None]) == len(PROBES), seen
    metrics = processor.metrics()
    print(
        f"\n{face_width} px: {len(seen)} sightings, {metrics['faces_embedded']} embeddings of "
        f"{metrics['faces_detected']} faces, {metrics['detect_ms']} ms per frame"
    )

"""The worker's default pipeline on the fixture clip gives the recognition result of the
every-frame pipeline it replaced: the same people, as many sightings (within one), each
first and last seen within a second of when that pipeline saw them.

The every-frame figures were measured on the fixture clip at 5 fps (the camera default)
with the previous pipeline: HOG on every frame scaled to 640 px without upsampling, every
face embedded, the same tracker vote.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from facefleet.worker.config import WorkerSettings
from facefleet.worker.pipeline.compute import ProcessCompute
from facefleet.worker.pipeline.face_pipeline import compute_spec, processor_config
from tests.fixtures.face_data import require_fixtures
from tests.worker.recognition_harness import Seen, clip_frames, recognize

FPS = 5.0
# (person, first seen, last seen) of each sighting of the every-frame pipeline.
EVERY_FRAME = [("lin_manuel_miranda", 2.69, 6.90), (None, 7.29, 8.10)]
IN_THE_CLIP = {"lin_manuel_miranda", "alex_lacamoire"}  # on stage; the rest are enrolled only


# The worker's defaults, and HOG alone (the default where the yuface wheel does not exist).
SETTINGS = {"default": WorkerSettings(), "hog": WorkerSettings(face_detector="hog")}


@pytest.fixture(scope="module", params=list(SETTINGS))
def compute(request: pytest.FixtureRequest) -> Iterator[ProcessCompute]:
    # In one compute process, as on a one-core worker.
    pool = ProcessCompute(compute_spec(SETTINGS[request.param]), processes=1)
    pool.start()
    yield pool
    pool.stop()


async def test_the_clip_gives_the_every_frame_result(compute: ProcessCompute) -> None:
    video = require_fixtures() / "video" / "two_people_clip.mp4"
    seen, processor = await recognize(
        compute, clip_frames(video, FPS), processor_config(WorkerSettings())
    )
    print("\n".join(f"{s.person} {s.first:.2f}-{s.last:.2f} ({s.frames} frames)" for s in seen))
    known = [s for s in seen if s.person is not None]
    assert {s.person for s in known} <= IN_THE_CLIP, seen  # nobody who is not there
    for person, first, last in EVERY_FRAME:
        ours = [s for s in seen if s.person == person]
        theirs = [p for p, _, _ in EVERY_FRAME if p == person]
        if person is not None:
            assert abs(len(ours) - len(theirs)) <= 1, (person, seen)
        assert any(_same_sighting(s, first, last) for s in ours), (person, first, last, seen)
    metrics = processor.metrics()
    # Fewer embeddings than faces: tracks are followed by their boxes in between.
    assert 0 < int(metrics["faces_embedded"]) < int(metrics["faces_detected"]), metrics
    assert metrics["frames_dropped_budget"] == 0


def _same_sighting(seen: Seen, first: float, last: float) -> bool:
    return abs(seen.first - first) <= 1.0 and abs(seen.last - last) <= 1.0

"""Runs the worker's face processor over known frames with the fixture people enrolled, on
the frames' own timeline, and collects the sightings it reports.

The gallery is enrolled the way the control plane enrolls (facefleet.api.people.faces):
the fixture's enrollment photos, upsampled HOG, weak detections ignored.
"""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from facefleet.api.people.faces import ENROLL_MIN_SCORE
from facefleet.face.engine import FaceEngine
from facefleet.face.images import load_image_rgb
from facefleet.face.model import MODEL_NAME
from facefleet.worker.local_store import LocalStore
from facefleet.worker.pipeline.compute import FaceCompute
from facefleet.worker.pipeline.face_processor import FaceProcessor, FaceProcessorConfig
from facefleet.worker.pipeline.gallery_store import GalleryStore
from facefleet.worker.pipeline.reporter import SightingOutbox
from facefleet.worker.pipeline.source import Frame
from facefleet.worker.worker_client import GalleryData, Sighting, SightingsAccepted
from tests.fixtures.face_data import require_fixtures

PEOPLE = [
    "alex_lacamoire",
    "barack_obama",
    "joe_biden",
    "kit_harington",
    "lin_manuel_miranda",
    "rose_leslie",
]
PERSON_IDS = {name: index for index, name in enumerate(PEOPLE, start=1)}
BGR = npt.NDArray[np.uint8]
EPOCH = 1_700_000_000.0  # the wall-clock time of the stream's t = 0


@functools.cache
def enrollment_engine() -> FaceEngine:
    return FaceEngine(upsample=1)


@functools.cache
def enrolled_gallery() -> GalleryData:
    enroll_dir = require_fixtures() / "faces" / "enroll"
    embeddings = []
    for person in PEOPLE:
        photo = next(enroll_dir.glob(f"{person}.*"))
        faces = enrollment_engine().analyze(load_image_rgb(photo.read_bytes()))
        [face] = [f for f in faces if f.score >= ENROLL_MIN_SCORE]
        embeddings.append(face.embedding)
    matrix = np.stack(embeddings).astype("<f4")
    return GalleryData(
        version=1,
        model=MODEL_NAME,
        threshold=0.6,
        dim=128,
        person_ids=list(PERSON_IDS.values()),
        people={str(i): name for name, i in PERSON_IDS.items()},
        embeddings_b64=base64.b64encode(matrix.tobytes()).decode(),
    )


@dataclass
class Recorder:
    """The control plane's side: serves the gallery, keeps what is reported."""

    posted: list[Sighting] = field(default_factory=list)

    async def get_gallery(self) -> GalleryData:
        return enrolled_gallery()

    async def report_sightings(
        self, camera_id: int, epoch: int, sightings: Sequence[Sighting]
    ) -> SightingsAccepted:
        self.posted.extend(sightings)
        return SightingsAccepted(accepted=len(sightings), ids=[])


@dataclass(frozen=True)
class Seen:
    """A final sighting on the stream's timeline (seconds from its start)."""

    person: str | None
    first: float
    last: float
    frames: int


def clip_frames(video: Path, fps: float) -> list[tuple[float, BGR]]:
    """The frames a camera at ``fps`` would take from one pass of the video."""
    capture = cv2.VideoCapture(str(video))
    assert capture.isOpened(), video
    rate = capture.get(cv2.CAP_PROP_FPS)
    frames: list[tuple[float, BGR]] = []
    index, due = 0, 0.0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        t = index / rate
        index += 1
        if t + 1e-9 >= due:
            frames.append((t, np.asarray(image, dtype=np.uint8)))
            due += 1 / fps
    capture.release()
    return frames


async def recognize(
    compute: FaceCompute,
    frames: Iterable[tuple[float, BGR]],
    config: FaceProcessorConfig | None = None,
) -> tuple[list[Seen], FaceProcessor]:
    """Every final sighting of one pass over ``frames`` (t seconds, BGR image)."""
    enrolled_gallery()  # enrolled before the first frame's budget starts
    recorder = Recorder()
    now = {"t": 0.0, "captured": time.monotonic()}

    def wall_clock() -> float:
        # The frame's own time, however long its processing took.
        return EPOCH + now["t"] + (time.monotonic() - now["captured"])

    reporter = SightingOutbox(LocalStore(":memory:"), recorder).reporter(1, 1)
    processor = FaceProcessor(
        compute.camera(),
        GalleryStore(recorder.get_gallery, MODEL_NAME),
        reporter,
        config=config,
        wall_clock=wall_clock,
    )
    for seq, (t, image) in enumerate(frames, start=1):
        now["t"], now["captured"] = t, time.monotonic()
        await processor.process(Frame(seq=seq, image=image, captured_at=now["captured"]))
        await processor.idle()  # frame by frame: the result must not depend on timing
    await processor.aclose()
    names = {i: name for name, i in PERSON_IDS.items()}
    seen = [
        Seen(
            names[s.person_id] if s.person_id is not None else None,
            s.first_seen - EPOCH,
            s.last_seen - EPOCH,
            s.frames,
        )
        for s in recorder.posted
    ]
    return sorted(seen, key=lambda s: s.first), processor

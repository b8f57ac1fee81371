"""Face pipeline benchmark: FaceEngine.analyze against a bare loop of the same dlib calls.

The frames of the fixture clip (640x360) are decoded once, converted to RGB and kept in
memory; then passes of FaceEngine.analyze and of the bare loop (HOG detection, 5-point
landmarks, batched ResNet descriptors) alternate over all of them. Frames per second per
core is frames / process CPU seconds, which load from other processes does not inflate;
wall-clock rates are printed beside it. The best pass of each side is compared.

    .venv/bin/python bench/pipeline.py
    .venv/bin/python bench/pipeline.py --rounds 5 --frames 100
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import dlib
import face_recognition_models
import numpy as np
import numpy.typing as npt

from facefleet.face.engine import FaceEngine

DEFAULT_VIDEO = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "fixtures"
    / "video"
    / "two_people_clip.mp4"
)
TARGET_RATIO = 0.9
Frame = npt.NDArray[np.uint8]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--rounds", type=int, default=3, help="passes of each side")
    parser.add_argument("--frames", type=int, default=0, help="use the first N frames (0: all)")
    return parser.parse_args(argv)


def read_frames(video: Path, limit: int) -> list[Frame]:
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise SystemExit(f"cannot open {video}")
    frames: list[Frame] = []
    while limit == 0 or len(frames) < limit:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8))
    capture.release()
    return frames


class BareLoop:
    """The dlib calls FaceEngine makes, without the engine around them."""

    def __init__(self) -> None:
        self.detector: Any = dlib.get_frontal_face_detector()
        self.shape_predictor: Any = dlib.shape_predictor(
            face_recognition_models.pose_predictor_five_point_model_location()
        )
        self.encoder: Any = dlib.face_recognition_model_v1(
            face_recognition_models.face_recognition_model_location()
        )
        # CPU seconds per stage over all calls, for the breakdown.
        self.detect_seconds = 0.0
        self.embed_seconds = 0.0
        self.frames = 0
        self.faces = 0

    def __call__(self, frame: Frame) -> int:
        start = time.thread_time()
        rects, _, _ = self.detector.run(frame, 0, 0.0)
        detected = time.thread_time()
        shapes = dlib.full_object_detections()
        for rect in rects:
            shapes.append(self.shape_predictor(frame, rect))
        if len(shapes):
            self.encoder.compute_face_descriptor(frame, shapes)
        self.detect_seconds += detected - start
        self.embed_seconds += time.thread_time() - detected
        self.frames += 1
        self.faces += len(rects)
        return len(rects)


def run_pass(analyze: Callable[[Frame], int], frames: list[Frame]) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and faces found over one pass of all frames."""
    faces = 0
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for frame in frames:
        faces += analyze(frame)
    return time.process_time() - cpu_start, time.perf_counter() - wall_start, faces


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.video.is_file():
        raise SystemExit(f"video not found: {args.video} (the shared/fixtures folder)")
    frames = read_frames(args.video, args.frames)
    height, width = frames[0].shape[:2]
    print(f"{len(frames)} frames of {width}x{height}, {os.cpu_count()} cpus")
    print(f"dlib {dlib.__version__}, opencv {cv2.__version__}, numpy {np.__version__}")
    print(f"load average at the start {os.getloadavg()[0]:.2f}")

    # The frames are 640 wide: detection runs at native size, as in the bare loop.
    engine = FaceEngine(max_detection_width=width)
    bare = BareLoop()
    sides: dict[str, Callable[[Frame], int]] = {
        "FaceEngine.analyze": lambda frame: len(engine.analyze(frame)),
        "bare dlib loop": bare,
    }
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in sides}
    for round_index in range(args.rounds):
        order = list(sides) if round_index % 2 == 0 else list(sides)[::-1]
        for name in order:
            results[name].append(run_pass(sides[name], frames))

    print(f"{'side':<20} {'fps/core':>9} {'wall fps':>9} {'faces':>6}")
    best: dict[str, float] = {}
    for name, passes in results.items():
        cpu, wall, faces = min(passes)
        best[name] = len(frames) / cpu
        print(f"{name:<20} {best[name]:9.1f} {len(frames) / wall:9.1f} {faces:6d}")
    face_counts = {faces for passes in results.values() for _, _, faces in passes}
    if len(face_counts) != 1:
        print(f"face counts differ between sides: {sorted(face_counts)}")
    print(
        f"bare loop CPU time: HOG detection {1000 * bare.detect_seconds / bare.frames:.1f} ms "
        f"per frame, landmarks + descriptor {1000 * bare.embed_seconds / max(1, bare.faces):.1f}"
        " ms per face"
    )
    ratio = best["FaceEngine.analyze"] / best["bare dlib loop"]
    print(f"ratio engine/bare {ratio:.3f} (target >= {TARGET_RATIO})")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0 if ratio >= TARGET_RATIO and len(face_counts) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())

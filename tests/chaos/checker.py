"""What the chaos suite checks, from the workers' own records of every frame they processed
(``FACEFLEET_WORKER_FRAME_LOG``) and from the database."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FrameRecord:
    at: float  # processing started
    done: float  # processing ended
    worker: str
    camera: int
    epoch: int


@dataclass(frozen=True)
class Segment:
    """A run of frames of one camera by one worker at one epoch."""

    worker: str
    epoch: int
    start: float
    end: float


def read_frames(path: Path) -> list[FrameRecord]:
    records = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 5:
            start, done, worker, camera, epoch = parts
            records.append(FrameRecord(float(start), float(done), worker, int(camera), int(epoch)))
    return sorted(records, key=lambda r: r.at)


def segments(records: list[FrameRecord], gap: float) -> dict[int, list[Segment]]:
    """Each camera's runs of frames by one worker at one epoch, from the start of a run's
    first frame to the end of its last: a run ends where no frame started for ``gap``."""
    by_key: dict[tuple[int, str, int], list[FrameRecord]] = defaultdict(list)
    for r in records:
        by_key[r.camera, r.worker, r.epoch].append(r)
    out: dict[int, list[Segment]] = defaultdict(list)
    for (camera, worker, epoch), frames in by_key.items():
        start, end = frames[0].at, frames[0].done
        for frame in frames[1:]:
            if frame.at - end > gap:
                out[camera].append(Segment(worker, epoch, start, end))
                start = frame.at
            end = max(end, frame.done)
        out[camera].append(Segment(worker, epoch, start, end))
    for runs in out.values():
        runs.sort(key=lambda s: s.start)
    return out


def double_processing(runs: dict[int, list[Segment]]) -> dict[int, float]:
    """Per camera: seconds in which two workers processed it at once."""
    out: dict[int, float] = {}
    for camera, segs in runs.items():
        total = 0.0
        for i, a in enumerate(segs):
            for b in segs[i + 1 :]:
                if b.start >= a.end:
                    break
                if a.worker != b.worker:
                    total += min(a.end, b.end) - b.start
        if total > 0:
            out[camera] = total
    return out


def merged(segs: list[Segment]) -> list[tuple[float, float]]:
    """The spans in which some worker processed the camera."""
    spans: list[tuple[float, float]] = []
    for seg in sorted(segs, key=lambda s: s.start):
        if spans and seg.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], seg.end))
        else:
            spans.append((seg.start, seg.end))
    return spans


def covered(segs: list[Segment], start: float, end: float) -> float:
    """Seconds of [start, end] in which some worker processed the camera."""
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in merged(segs))


def unprocessed(
    runs: dict[int, list[Segment]], cameras: list[int], start: float, end: float
) -> float:
    """Camera-seconds in [start, end] in which nobody processed a camera."""
    return sum((end - start) - covered(runs.get(camera, []), start, end) for camera in cameras)


def pauses(
    runs: dict[int, list[Segment]], cameras: list[int], start: float, end: float, gap: float
) -> dict[int, tuple[float, float]]:
    """Per camera, the longest pause in its processing (longer than ``gap``) that began
    within [start, end], as (paused at, resumed at)."""
    out: dict[int, tuple[float, float]] = {}
    for camera in cameras:
        spans = merged(runs.get(camera, []))
        for (_, paused), (resumed, _) in itertools.pairwise(spans):
            longest = out.get(camera, (0.0, 0.0))
            pause = resumed - paused
            if pause > gap and start <= paused <= end and pause > longest[1] - longest[0]:
                out[camera] = (paused, resumed)
    return out


def last_frames(path: Path) -> dict[int, float]:
    """When each camera's newest frame started."""
    latest: dict[int, float] = {}
    for record in read_frames(path):
        latest[record.camera] = max(record.at, latest.get(record.camera, 0.0))
    return latest

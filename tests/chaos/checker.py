"""What the chaos suite checks, from the workers' own records of every frame they processed
(``FACEFLEET_WORKER_FRAME_LOG``) and from the database."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FrameRecord:
    at: float
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
        if len(parts) == 4:
            records.append(FrameRecord(float(parts[0]), parts[1], int(parts[2]), int(parts[3])))
    return sorted(records, key=lambda r: r.at)


def segments(
    records: list[FrameRecord], frame_period: float, gap: float
) -> dict[int, list[Segment]]:
    """Each camera's runs of frames: a run ends at a gap longer than ``gap``, and covers its
    last frame for one ``frame_period``."""
    by_key: dict[tuple[int, str, int], list[float]] = defaultdict(list)
    for r in records:
        by_key[r.camera, r.worker, r.epoch].append(r.at)
    out: dict[int, list[Segment]] = defaultdict(list)
    for (camera, worker, epoch), times in by_key.items():
        start = prev = times[0]
        for at in times[1:]:
            if at - prev > gap:
                out[camera].append(Segment(worker, epoch, start, prev + frame_period))
                start = at
            prev = at
        out[camera].append(Segment(worker, epoch, start, prev + frame_period))
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


def back_after(
    runs: dict[int, list[Segment]], cameras: list[int], since: float, gap: float, window: float
) -> float:
    """Seconds after ``since`` until every camera was processed again: for each camera, the
    end of the first pause longer than ``gap`` that began within ``window`` of ``since``
    (0 for a camera whose processing never paused)."""
    worst = 0.0
    for camera in cameras:
        spans = merged(runs.get(camera, []))
        for (_, paused), (resumed, _) in itertools.pairwise(spans):
            if resumed - paused > gap and since - gap <= paused <= since + window:
                worst = max(worst, resumed - since)
                break
    return worst

"""A per-camera motion gate: where a frame changed since the last one, at almost no cost.

Frame differencing on a small, blurred grey copy of the frame: pixels that changed by more
than ``threshold`` grey levels form blobs; each blob's box, padded and mapped back to the
frame's own pixels, is a region worth looking for faces in. A static scene gives no region,
so it costs a resize and a subtraction per frame. The first frame (and a frame of another
size) is all new.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from facefleet.face.engine import Box

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class MotionConfig:
    width: int = 480  # the small frame's width; a 40 px face of a 1080p frame is 10 px there
    threshold: int = 14  # grey levels of change that count as motion (noise stays below)
    min_area: int = 3  # smallest blob, in small-frame pixels, that counts
    pad: float = 0.5  # blob sizes added around each blob (motion often covers part of a face)
    min_pad: int = 32  # at least this many frame pixels of padding
    cut_below: float = 0.2  # thumbnail correlation under which the frame is a new picture

    def __post_init__(self) -> None:
        if self.width < 16 or not 0 < self.threshold < 255 or self.min_area < 1:
            raise ValueError("width >= 16, 0 < threshold < 255 and min_area >= 1 are required")
        if self.pad < 0 or self.min_pad < 0:
            raise ValueError("pad and min_pad must not be negative")


class MotionGate:
    """Not thread-safe: one camera's frames, in order."""

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self._previous: Image | None = None
        self._thumbnail: npt.NDArray[np.float32] | None = None
        self._kernel = np.ones((3, 3), dtype=np.uint8)
        self.cut = False  # what the last regions() call saw
        self.frames = 0  # frames seen since the start or the last reset

    def reset(self) -> None:
        self._previous = None
        self._thumbnail = None
        self.frames = 0

    def regions(self, frame_bgr: Image) -> list[Box]:
        """Boxes (frame pixels) that changed since the previous frame given here."""
        self.frames += 1
        height, width = frame_bgr.shape[:2]
        scale = min(1.0, self.config.width / width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        shrunk = cv2.resize(grey, size, interpolation=cv2.INTER_AREA) if scale < 1 else grey
        small: Image = np.asarray(cv2.GaussianBlur(shrunk, (5, 5), 0), dtype=np.uint8)
        previous, self._previous = self._previous, small
        thumbnail = _thumbnail(small)
        last, self._thumbnail = self._thumbnail, thumbnail
        self.cut = last is not None and float(last @ thumbnail) < self.config.cut_below
        if previous is None or previous.shape != small.shape:
            return [Box(0, 0, width, height)]
        changed = cv2.absdiff(small, previous)
        _, mask = cv2.threshold(changed, self.config.threshold, 255, cv2.THRESH_BINARY)
        if not cv2.countNonZero(mask):
            return []
        mask = cv2.dilate(mask, self._kernel)
        # 16-bit labels where they cannot overflow (the same components, in the same
        # order, twice as fast): after the dilation every blob has at least 4 pixels.
        labels = cv2.CV_16U if mask.size // 4 < 0xFFFF else cv2.CV_32S
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=labels)
        boxes = []
        for x, y, w, h, area in stats[1:count].tolist():
            if area < self.config.min_area:
                continue
            pad_x = max(self.config.min_pad, self.config.pad * w / scale)
            pad_y = max(self.config.min_pad, self.config.pad * h / scale)
            boxes.append(
                Box(
                    max(0, int(x / scale - pad_x)),
                    max(0, int(y / scale - pad_y)),
                    min(width, int((x + w) / scale + pad_x) + 1),
                    min(height, int((y + h) / scale + pad_y) + 1),
                )
            )
        return merge_boxes(boxes)


def _thumbnail(grey: Image) -> npt.NDArray[np.float32]:
    values = cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    values -= values.mean()
    norm = float(np.linalg.norm(values))
    return values / norm if norm > 1e-6 else values  # a flat frame correlates with nothing


def overlaps(a: Box, b: Box) -> bool:
    return a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom


def union(a: Box, b: Box) -> Box:
    return Box(
        min(a.left, b.left), min(a.top, b.top), max(a.right, b.right), max(a.bottom, b.bottom)
    )


def merge_boxes(boxes: list[Box], waste: float = 1.5) -> list[Box]:
    """Overlapping boxes merged into their union while the union is not much larger than
    the two (at most ``waste`` times their areas): scattered blobs must not grow into one
    box over the whole frame, which would be searched pixel by pixel."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        out: list[Box] = []
        for box in merged:
            for index, other in enumerate(out):
                joined = union(box, other)
                if overlaps(box, other) and _area(joined) <= waste * (_area(box) + _area(other)):
                    out[index] = joined
                    changed = True
                    break
            else:
                out.append(box)
        merged = out
    return merged


def _area(box: Box) -> int:
    return box.width * box.height


__all__ = ["MotionConfig", "MotionGate", "merge_boxes", "overlaps", "union"]

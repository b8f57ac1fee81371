"""Finds a camera's faces where it matters, at the resolution each place needs.

Two kinds of region are searched, each cropped from the full-resolution frame:
- motion regions (from the camera's MotionGate), scaled so that a face of ``min_face``
  pixels reaches the detector's own smallest face: a HOG detector upsamples a 1080p
  camera's moving parts 1.5x to find 40 px faces;
- the boxes of faces already tracked (``hints``), padded, scaled so that the face they
  hold comes out comfortably above the detector's smallest: large faces are downscaled,
  small ones upsampled. A still face stays found although nothing moves.
Overlapping regions are searched once, at the larger of their scales; the detections are
mapped back to frame pixels and duplicates removed. ``pixel_budget`` bounds the work of one
frame (a scene cut makes the whole frame move): past it, every region is scaled down.

Tracked faces are searched every frame; motion every ``motion_every`` frames, over all the
motion seen since the last search (a scene cut is searched at once): a new face is found
within that many frames, at a fraction of the cost on a camera that never stops moving.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from facefleet.face.detectors import Detection, FaceDetector
from facefleet.face.engine import Box
from facefleet.face.motion import MotionConfig, MotionGate, merge_boxes, overlaps, union

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class FinderConfig:
    min_face: int = 40  # smallest face (box width, frame pixels) searched for where motion is
    max_scale: float = 2.0  # no region is upsampled more than this
    hint_pad: float = 0.6  # face widths searched around a tracked face
    hint_face: float = 1.25  # a tracked face is scaled to this many detector minimums
    pixel_budget: int = 1_500_000  # scaled pixels detected per frame at most
    full_frame_share: float = 0.5  # regions covering more of the frame: one full pass
    duplicate_iou: float = 0.4  # detections overlapping this much are one face
    motion: MotionConfig = field(default_factory=MotionConfig)
    use_motion: bool = True  # False: every frame is searched whole (the every-frame mode)
    motion_every: int = 5  # frames between searches of motion regions

    def __post_init__(self) -> None:
        if self.min_face < 8 or self.max_scale <= 0 or self.pixel_budget < 10_000:
            raise ValueError("min_face >= 8, max_scale > 0 and pixel_budget >= 10000")
        if self.motion_every < 1:
            raise ValueError("motion_every must be at least 1")


@dataclass(frozen=True, slots=True)
class Region:
    box: Box
    scale: float


@dataclass(frozen=True)
class FoundFaces:
    detections: list[Detection]  # boxes in frame pixels
    regions: list[Region]  # what was searched
    motion: bool  # the gate saw something move
    cut: bool  # the gate saw the whole picture change (a scene cut, a camera moved)
    pixels: int  # scaled pixels given to the detector


class FaceFinder:
    """One camera's finder: holds its motion gate, so frames must come in order."""

    def __init__(self, detector: FaceDetector, config: FinderConfig | None = None) -> None:
        self.detector = detector
        self.config = config or FinderConfig()
        self.gate = MotionGate(self.config.motion)
        self._pending: list[Box] = []  # motion not searched yet
        self._since_search = 0

    def plan(
        self, frame_shape: tuple[int, ...], moving: Sequence[Box], hints: Sequence[Box]
    ) -> list[Region]:
        """The regions to search and their scales (exposed for tests and benchmarks)."""
        height, width = frame_shape[:2]
        config = self.config
        detector_min = self.detector.min_face
        motion_scale = min(config.max_scale, detector_min / config.min_face)
        regions = [Region(box, motion_scale) for box in moving]
        for hint in hints:
            size = max(1, min(hint.width, hint.height))
            pad = round(config.hint_pad * size)
            box = Box(
                max(0, hint.left - pad),
                max(0, hint.top - pad),
                min(width, hint.right + pad),
                min(height, hint.bottom + pad),
            )
            if box.width > 0 and box.height > 0:
                scale = min(config.max_scale, config.hint_face * detector_min / size)
                regions.append(Region(box, scale))
        regions = _merge(regions)
        area = sum(_area(r.box) for r in regions)
        if regions and area > config.full_frame_share * width * height:
            regions = [Region(Box(0, 0, width, height), max(r.scale for r in regions))]
        pixels = sum(r.box.width * r.box.height * r.scale**2 for r in regions)
        if pixels > config.pixel_budget:
            shrink = math.sqrt(config.pixel_budget / pixels)
            regions = [Region(r.box, r.scale * shrink) for r in regions]
        return regions

    def find(self, frame_bgr: Image, hints: Sequence[Box] = ()) -> FoundFaces:
        height, width = frame_bgr.shape[:2]
        cut = False
        if self.config.use_motion:
            moved = self.gate.regions(frame_bgr)
            cut = self.gate.cut
            first = self.gate.frames == 1
            self._pending = merge_boxes(self._pending + moved)
            self._since_search += 1
            moving: list[Box] = []
            if cut or first or self._since_search >= self.config.motion_every:
                moving, self._pending, self._since_search = self._pending, [], 0
        else:
            moved = moving = [Box(0, 0, width, height)]
        regions = self.plan(frame_bgr.shape, moving, hints)
        detections: list[Detection] = []
        pixels = 0
        for region in regions:
            found, scanned = self._search(frame_bgr, region)
            detections.extend(found)
            pixels += scanned
        unique = _unique(detections, self.config.duplicate_iou)
        return FoundFaces(unique, regions, bool(moved), cut, pixels)

    def _search(self, frame_bgr: Image, region: Region) -> tuple[list[Detection], int]:
        box, scale = region.box, region.scale
        crop = frame_bgr[box.top : box.bottom, box.left : box.right]
        if abs(scale - 1.0) > 0.02:
            size = (max(1, round(box.width * scale)), max(1, round(box.height * scale)))
            interpolation = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
            crop = np.asarray(cv2.resize(crop, size, interpolation=interpolation), dtype=np.uint8)
        else:
            scale = 1.0
        found = []
        for detection in self.detector.detect(crop):
            b = detection.box
            mapped = Box(
                box.left + math.floor(b.left / scale),
                box.top + math.floor(b.top / scale),
                min(box.right, box.left + math.ceil(b.right / scale)),
                min(box.bottom, box.top + math.ceil(b.bottom / scale)),
            )
            if mapped.width > 0 and mapped.height > 0:
                found.append(Detection(mapped, detection.score))
        return found, crop.shape[0] * crop.shape[1]


def _merge(regions: list[Region], waste: float = 1.5) -> list[Region]:
    """Overlapping regions searched once, at the larger scale, unless their union would
    search much more than the two (see motion.merge_boxes)."""
    merged = list(regions)
    changed = True
    while changed:
        changed = False
        out: list[Region] = []
        for region in merged:
            for index, other in enumerate(out):
                a, b = region.box, other.box
                if overlaps(a, b) and _area(union(a, b)) <= waste * (_area(a) + _area(b)):
                    scale = max(region.scale, other.scale)
                    out[index] = Region(union(region.box, other.box), scale)
                    changed = True
                    break
            else:
                out.append(region)
        merged = out
    return merged


def _area(box: Box) -> int:
    return box.width * box.height


def box_iou(a: Box, b: Box) -> float:
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a.width * a.height + b.width * b.height - inter)


def _unique(detections: list[Detection], max_iou: float) -> list[Detection]:
    kept: list[Detection] = []
    for detection in sorted(detections, key=lambda d: -d.score):
        if all(box_iou(detection.box, k.box) < max_iou for k in kept):
            kept.append(detection)
    return kept


__all__ = ["FaceFinder", "FinderConfig", "FoundFaces", "Region", "box_iou"]

"""The region finder with a scripted detector: which regions, at which scale, and boxes
mapped back to the frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest

from facefleet.face.detectors import Detection, DetectorName, HogDetector
from facefleet.face.engine import Box
from facefleet.face.finder import FaceFinder, FinderConfig, Region
from facefleet.face.synthetic_stream import textured_background


@dataclass
class Scripted:
    """Finds one face at the centre of every crop, of the crop's smaller side / 3."""

    name: DetectorName = "hog"
    min_face: int = 60
    crops: list[tuple[int, int]] = field(default_factory=list)

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Detection]:
        height, width = image_bgr.shape[:2]
        self.crops.append((width, height))
        side = min(width, height) // 3
        left, top = (width - side) // 2, (height - side) // 2
        return [Detection(Box(left, top, left + side, top + side), 1.0)]


def frame(width: int = 1920, height: int = 1080) -> npt.NDArray[np.uint8]:
    return np.zeros((height, width, 3), dtype=np.uint8)


def test_motion_is_upscaled_so_the_smallest_face_reaches_the_detector() -> None:
    finder = FaceFinder(Scripted(), FinderConfig(min_face=40))
    [region] = finder.plan((1080, 1920), [Box(100, 100, 400, 400)], [])
    assert region == Region(Box(100, 100, 400, 400), 1.5)  # 60 / 40


def test_a_tracked_face_is_scaled_to_its_size_large_ones_down() -> None:
    finder = FaceFinder(Scripted(), FinderConfig(hint_face=1.5, hint_pad=1.0))
    [large] = finder.plan((1080, 1920), [], [Box(800, 400, 1100, 700)])
    assert large.box == Box(500, 100, 1400, 1000)
    assert large.scale == pytest.approx(90 / 300)
    [small] = finder.plan((1080, 1920), [], [Box(800, 400, 840, 440)])
    assert small.scale == pytest.approx(2.0)  # capped at max_scale


def test_the_pixel_budget_scales_every_region_down() -> None:
    finder = FaceFinder(Scripted(), FinderConfig(pixel_budget=500_000))
    regions = finder.plan((1080, 1920), [Box(0, 0, 1920, 1080)], [])
    assert len(regions) == 1
    pixels = sum(r.box.width * r.box.height * r.scale**2 for r in regions)
    assert pixels == pytest.approx(500_000, rel=0.01)


def test_boxes_found_in_a_scaled_crop_are_mapped_back_to_the_frame() -> None:
    detector = Scripted()
    finder = FaceFinder(detector, FinderConfig(min_face=40, motion_every=1))
    finder.find(frame())  # the first frame: all of it is new
    detector.crops.clear()
    image = frame()
    image[500:600, 1000:1100] = 255  # something moves there
    found = finder.find(image)
    [(width, height)] = detector.crops
    [region] = found.regions
    assert (width, height) == (round(region.box.width * 1.5), round(region.box.height * 1.5))
    [detection] = found.detections
    centre_x = (detection.box.left + detection.box.right) / 2
    centre_y = (detection.box.top + detection.box.bottom) / 2
    assert centre_x == pytest.approx((region.box.left + region.box.right) / 2, abs=2)
    assert centre_y == pytest.approx((region.box.top + region.box.bottom) / 2, abs=2)
    assert detection.box.width == pytest.approx(min(width, height) // 3 / 1.5, abs=2)


def test_motion_is_searched_every_few_frames_and_tracked_faces_every_frame() -> None:
    background = textured_background(1920, 1080)

    def moving(index: int) -> npt.NDArray[np.uint8]:
        image = background.copy()
        image[100:200, 100 + 50 * index : 200 + 50 * index] = 255
        return image

    finder = FaceFinder(Scripted(), FinderConfig(motion_every=3))
    finder.find(background)
    counts = [len(finder.find(moving(index)).regions) for index in range(6)]
    assert counts == [0, 0, 1, 0, 0, 1]
    tracked = Box(1500, 800, 1560, 860)
    counts = [len(finder.find(moving(index), [tracked]).regions) for index in range(6, 12)]
    assert counts == [1, 1, 2, 1, 1, 2]  # the tracked face every frame, motion every third


def test_the_hog_detector_finds_nothing_in_an_empty_frame() -> None:
    assert HogDetector().detect(frame(320, 240)) == []

"""The motion gate on synthetic frames: what moved, what did not, and scene cuts."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from facefleet.face.engine import Box
from facefleet.face.motion import MotionGate, merge_boxes
from facefleet.face.synthetic_stream import textured_background

Image = npt.NDArray[np.uint8]


def scene(seed: int = 0) -> Image:
    return textured_background(1280, 720, seed=seed)


def noisy(image: Image, seed: int, sigma: float = 2.0) -> Image:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def with_square(image: Image, x: int, y: int, size: int = 60) -> Image:
    out = image.copy()
    out[y : y + size, x : x + size] = (30, 200, 240)
    return out


def test_the_first_frame_is_all_new_and_a_still_scene_gives_nothing() -> None:
    gate = MotionGate()
    background = scene()
    assert gate.regions(noisy(background, 1)) == [Box(0, 0, 1280, 720)]
    for seed in range(2, 8):  # sensor noise alone is not motion
        assert gate.regions(noisy(background, seed)) == []
    assert not gate.cut


def test_a_moving_object_gives_a_region_around_it() -> None:
    gate = MotionGate()
    background = scene()
    gate.regions(with_square(background, 400, 300))
    [region] = gate.regions(noisy(with_square(background, 440, 300), 3))
    # Both where it was and where it is now, with some margin, and little else.
    assert region.left <= 400 and region.right >= 500 and region.top <= 300
    assert region.bottom >= 360
    assert region.width * region.height < 0.1 * 1280 * 720
    assert not gate.cut


def test_a_scene_cut_is_told_apart_from_motion() -> None:
    gate = MotionGate()
    gate.regions(scene(0))
    gate.regions(with_square(scene(0), 100, 100))
    assert not gate.cut
    gate.regions(scene(5))  # another picture altogether
    assert gate.cut


def test_scattered_blobs_are_not_merged_into_one_huge_box() -> None:
    boxes = [Box(x, y, x + 100, y + 100) for x in range(0, 1200, 90) for y in (0, 600)]
    merged = merge_boxes(boxes)
    assert sum(b.width * b.height for b in merged) < 0.5 * 1280 * 720
    assert merge_boxes([Box(0, 0, 100, 100), Box(50, 50, 150, 150)]) == [Box(0, 0, 150, 150)]

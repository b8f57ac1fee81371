"""Every detector on a real photo: both faces of two_people.jpg, nothing in an empty frame,
and YuNet-proposed faces confirmed with HOG's own boxes."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from facefleet.face.detectors import DETECTOR_NAMES, DetectorName, make_detector, yunet_available
from facefleet.face.finder import box_iou

from .conftest import PhotoLoader

NEEDS_YUFACE = {"yunet", "yunet-hog"}


def bgr(load_photo: PhotoLoader, name: str) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(load_photo(name), cv2.COLOR_RGB2BGR), dtype=np.uint8)


@pytest.mark.parametrize("name", [n for n in DETECTOR_NAMES if n != "cnn"])
def test_each_detector_finds_both_faces(load_photo: PhotoLoader, name: DetectorName) -> None:
    if name in NEEDS_YUFACE and not yunet_available():
        pytest.skip("the yuface wheel exists for CPython 3.11 on x86-64 only")
    detector = make_detector(name)
    image = bgr(load_photo, "probe/two_people.jpg")
    scale = detector.min_face / 80  # the photo's faces are over 100 px
    small = np.asarray(cv2.resize(image, None, fx=scale, fy=scale), dtype=np.uint8)
    assert len(detector.detect(small)) == 2
    assert detector.detect(np.zeros((240, 320, 3), dtype=np.uint8)) == []


def test_confirmed_proposals_have_hogs_boxes(load_photo: PhotoLoader) -> None:
    if not yunet_available():
        pytest.skip("the yuface wheel exists for CPython 3.11 on x86-64 only")
    image = bgr(load_photo, "probe/two_people.jpg")
    hog = sorted(make_detector("hog").detect(image), key=lambda d: d.box.left)
    both = sorted(make_detector("yunet-hog").detect(image), key=lambda d: d.box.left)
    assert len(hog) == len(both) == 2
    assert all(box_iou(a.box, b.box) > 0.6 for a, b in zip(hog, both, strict=True))


def test_an_unknown_detector_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown face detector"):
        make_detector("sift")  # type: ignore[arg-type]

"""Face detectors behind one small interface, each with the smallest face it finds unscaled.

- ``hog``: dlib's HOG + linear SVM frontal detector on the grey image (the colour version
  costs ~20% more for the same faces). Its 80x80 window finds faces from about 60 pixels;
  dlib releases the GIL while it scans, so threads detect in parallel.
- ``cnn``: dlib's MMOD CNN. Finds turned faces HOG misses, at many times the cost.
- ``yunet``: the libfacedetection CNN (YuNet) of the ``yuface`` wheel, whose weights are
  compiled into the library. Finds faces from about 20 pixels without upscaling.
- ``yunet-hog``: YuNet proposes, on a copy shrunk to its own scale, and HOG confirms each
  proposal on a small crop: HOG's faces (frontal, what the embedding handles well) at a
  fraction of HOG's cost over large regions.

The figures that chose the default are in docs/performance.md.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from facefleet.face.engine import Box

DetectorName = Literal["hog", "cnn", "yunet", "yunet-hog"]
DETECTOR_NAMES: tuple[DetectorName, ...] = ("hog", "cnn", "yunet", "yunet-hog")
Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Detection:
    box: Box  # in the pixels of the image given to the detector
    score: float  # the detector's own confidence scale


class FaceDetector(Protocol):
    """Finds faces in a BGR image. Safe to call from several threads at once."""

    @property
    def name(self) -> DetectorName: ...

    @property
    def min_face(self) -> int:
        """The smallest face box width (pixels) found reliably in an unscaled image."""
        ...

    def detect(self, image_bgr: Image) -> list[Detection]: ...


def _clipped(box: Box, width: int, height: int) -> Box | None:
    clipped = Box(max(0, box.left), max(0, box.top), min(width, box.right), min(height, box.bottom))
    return clipped if clipped.width > 0 and clipped.height > 0 else None


class HogDetector:
    name: DetectorName = "hog"
    min_face = 60

    def __init__(self, threshold: float = 0.0) -> None:
        import dlib

        self._dlib = dlib
        self.threshold = threshold
        # A dlib object detector keeps scratch buffers: one per thread.
        self._local = threading.local()

    def _detector(self) -> Any:
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = self._dlib.get_frontal_face_detector()
        return detector

    def detect(self, image_bgr: Image) -> list[Detection]:
        grey = np.ascontiguousarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))
        rects, scores, _ = self._detector().run(grey, 0, self.threshold)
        height, width = grey.shape
        found = []
        for rect, score in zip(rects, scores, strict=True):
            # dlib's right and bottom are inclusive.
            box = _clipped(
                Box(rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1), width, height
            )
            if box is not None:
                found.append(Detection(box, float(score)))
        return found


class CnnDetector:
    name: DetectorName = "cnn"
    min_face = 80

    def __init__(self, threshold: float = 0.0) -> None:
        import dlib
        import face_recognition_models

        self._model_path = face_recognition_models.cnn_face_detector_model_location()
        self._dlib = dlib
        self.threshold = threshold
        self._local = threading.local()

    def detect(self, image_bgr: Image) -> list[Detection]:
        net = getattr(self._local, "net", None)
        if net is None:
            net = self._local.net = self._dlib.cnn_face_detection_model_v1(self._model_path)
        rgb = np.ascontiguousarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        height, width = rgb.shape[:2]
        found = []
        for d in net(rgb, 0):
            if d.confidence < self.threshold:
                continue
            r = d.rect
            box = _clipped(Box(r.left(), r.top(), r.right() + 1, r.bottom() + 1), width, height)
            if box is not None:
                found.append(Detection(box, float(d.confidence)))
        return found


class YuNetDetector:
    """libfacedetection through ``yuface``: BGR in, boxes with a 0-100 confidence out."""

    name: DetectorName = "yunet"
    min_face = 20
    # YuNet's boxes are tall (forehead to chin): mapped to HOG's square boxes, which dlib's
    # landmark model was fitted to (measured on the fixture photos: HOG's side is 1.14x
    # YuNet's width and 0.82x its height, its centre 5% of the height lower).
    WIDTH_SHARE, HEIGHT_SHARE, DROP = 0.57, 0.41, 0.05

    def __init__(self, threshold: float = 0.6) -> None:
        # Its OpenMP threads busy-wait between calls, which costs the worker's other
        # cameras more than it gains: one thread per call, parallelism comes from ours.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        try:
            from yuface import yuface as native
        except ImportError as exc:
            raise RuntimeError(
                "the yunet detector needs the yuface package (pip install yuface)"
            ) from exc
        self._native = native
        self.threshold = threshold

    def detect(self, image_bgr: Image) -> list[Detection]:
        height, width = image_bgr.shape[:2]
        # Rows of (confidence 0-100, x, y, w, h, five landmark points, ...).
        rows = np.asarray(self._native.detect(np.ascontiguousarray(image_bgr)))
        found: list[Detection] = []
        if rows.size == 0:
            return found
        for row in rows.reshape(len(rows), -1):
            confidence = float(row[0]) / 100
            if confidence < self.threshold:
                continue
            x, y, w, h = (float(v) for v in row[1:5])
            cx, cy = x + w / 2, y + h / 2 + self.DROP * h
            half = (self.WIDTH_SHARE * w + self.HEIGHT_SHARE * h) / 2
            box = _clipped(
                Box(round(cx - half), round(cy - half), round(cx + half), round(cy + half)),
                width,
                height,
            )
            if box is not None:
                found.append(Detection(box, confidence))
        return found


class ProposeConfirmDetector:
    """YuNet's proposals, each confirmed by HOG around it. Found faces have HOG's boxes."""

    name: DetectorName = "yunet-hog"
    min_face = HogDetector.min_face  # regions come scaled for HOG

    def __init__(self, hog_threshold: float = 0.0, yunet_threshold: float = 0.5) -> None:
        self._hog = HogDetector(hog_threshold)
        self._yunet = YuNetDetector(yunet_threshold)
        self._shrink = YuNetDetector.min_face / HogDetector.min_face

    def detect(self, image_bgr: Image) -> list[Detection]:
        height, width = image_bgr.shape[:2]
        small = cv2.resize(
            image_bgr,
            (max(1, round(width * self._shrink)), max(1, round(height * self._shrink))),
            interpolation=cv2.INTER_AREA,
        )
        found: list[Detection] = []
        for proposal in self._yunet.detect(np.asarray(small, dtype=np.uint8)):
            b = proposal.box
            size = max(b.width, b.height) / self._shrink
            cx, cy = (b.left + b.right) / 2 / self._shrink, (b.top + b.bottom) / 2 / self._shrink
            # HOG needs the face and a margin around it; the crop is shrunk so the face is a
            # quarter above HOG's smallest, which is all HOG needs to confirm it.
            half = max(size, self.min_face) * 1.1
            left, top = max(0, round(cx - half)), max(0, round(cy - half))
            crop = image_bgr[
                top : min(height, round(cy + half)), left : min(width, round(cx + half))
            ]
            scale = min(1.0, 1.25 * self.min_face / max(1.0, size))
            if scale < 1.0:
                crop = np.asarray(
                    cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA),
                    dtype=np.uint8,
                )
            for confirmed in self._hog.detect(np.ascontiguousarray(crop)):
                c = confirmed.box
                box = Box(
                    left + round(c.left / scale),
                    top + round(c.top / scale),
                    min(width, left + round(c.right / scale)),
                    min(height, top + round(c.bottom / scale)),
                )
                if all(_overlap(box, other.box) < 0.4 for other in found):
                    found.append(Detection(box, confirmed.score))
        return found


def _overlap(a: Box, b: Box) -> float:
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    if width <= 0 or height <= 0:
        return 0.0
    return width * height / min(a.width * a.height, b.width * b.height)


def yunet_available() -> bool:
    # Looked up, not imported: its OpenMP runtime reads OMP_NUM_THREADS once, when loaded.
    return importlib.util.find_spec("yuface") is not None


def make_detector(name: DetectorName, threshold: float | None = None) -> FaceDetector:
    if name == "hog":
        return HogDetector(0.0 if threshold is None else threshold)
    if name == "cnn":
        return CnnDetector(0.0 if threshold is None else threshold)
    if name == "yunet":
        return YuNetDetector(0.6 if threshold is None else threshold)
    if name == "yunet-hog":
        return ProposeConfirmDetector(0.0 if threshold is None else threshold)
    raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")


__all__ = [
    "DETECTOR_NAMES",
    "CnnDetector",
    "Detection",
    "DetectorName",
    "FaceDetector",
    "HogDetector",
    "ProposeConfirmDetector",
    "YuNetDetector",
    "make_detector",
    "yunet_available",
]

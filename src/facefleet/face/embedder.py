"""Embeddings of faces already found: dlib's 5-point landmarks, then the ResNet descriptor
(facefleet.face.descriptor: numpy's by default, dlib's own as the fallback).

Each face is embedded from a crop around its box, converted to RGB on its own, so a 1080p
frame is never converted whole for a face of 60 pixels. The embedding is the one
FaceEngine gives for the same box (the chip dlib cuts lies well inside the crop).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from facefleet.face.descriptor import DescriptorName, load_descriptor
from facefleet.face.engine import Box

Image = npt.NDArray[np.uint8]
# Margin around the box, in box sizes: dlib's aligned chip reaches about 0.25 past the
# landmarks, and a turned face's landmarks reach past its box.
CROP_MARGIN = 0.6


class FaceEmbedder:
    """Thread-safe: each thread gets its own landmark model (dlib's objects keep state).

    ``descriptor`` picks the ResNet's implementation (facefleet.face.descriptor): numpy's
    unless it fails its start-up check, then dlib's; ``descriptor_name`` says which runs.
    """

    def __init__(self, descriptor: DescriptorName = "numpy") -> None:
        import dlib
        import face_recognition_models

        self._dlib = dlib
        self._predictor_path = face_recognition_models.pose_predictor_five_point_model_location()
        self._local = threading.local()
        self._predictor()  # load now, in the caller's thread: a bad install fails at start-up
        self.descriptor = load_descriptor(descriptor)

    @property
    def descriptor_name(self) -> str:
        return self.descriptor.name

    @property
    def description(self) -> str:
        return self.descriptor.description

    def _predictor(self) -> Any:
        predictor = getattr(self._local, "predictor", None)
        if predictor is None:
            predictor = self._local.predictor = self._dlib.shape_predictor(self._predictor_path)
        return predictor

    def embed(self, frame_bgr: Image, boxes: Sequence[Box]) -> npt.NDArray[np.float32]:
        """Embeddings (len(boxes), 128) of the given boxes of a BGR frame."""
        return self.embed_crops([face_crop(frame_bgr, box) for box in boxes])

    def embed_crops(self, crops: Sequence[tuple[Image, Box]]) -> npt.NDArray[np.float32]:
        """Embeddings of face_crop() results: a crop (BGR) and the face's box inside it."""
        predictor = self._predictor()
        faces: list[tuple[Image, Any]] = []
        for crop_bgr, box in crops:
            crop = np.ascontiguousarray(cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            rect = self._dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
            faces.append((crop, predictor(crop, rect)))
        return self.descriptor.compute(faces)


def face_crop(frame_bgr: Image, box: Box) -> tuple[Image, Box]:
    """The face with CROP_MARGIN around it (a copy), and the box in the crop's pixels: all
    an embedding needs, small enough to send to another process."""
    height, width = frame_bgr.shape[:2]
    pad = round(CROP_MARGIN * max(box.width, box.height))
    left, top = max(0, box.left - pad), max(0, box.top - pad)
    right, bottom = min(width, box.right + pad), min(height, box.bottom + pad)
    crop = np.ascontiguousarray(frame_bgr[top:bottom, left:right])
    return crop, Box(box.left - left, box.top - top, box.right - left, box.bottom - top)


def sharpness(frame_bgr: Image, box: Box) -> float:
    """Variance of the Laplacian over the face (low = blurred), on the grey crop."""
    crop = frame_bgr[box.top : box.bottom, box.left : box.right]
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return float(np.var(cv2.Laplacian(grey, cv2.CV_64F)))


__all__ = ["CROP_MARGIN", "FaceEmbedder", "face_crop", "sharpness"]

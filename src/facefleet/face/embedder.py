"""Embeddings of faces already found: dlib's 5-point landmarks and ResNet descriptor.

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

from facefleet.face.engine import Box
from facefleet.face.model import EMBEDDING_DIM

Image = npt.NDArray[np.uint8]
# Margin around the box, in box sizes: dlib's aligned chip reaches about 0.25 past the
# landmarks, and a turned face's landmarks reach past its box.
CROP_MARGIN = 0.6


class FaceEmbedder:
    """Thread-safe: each thread gets its own copy of the models (the ResNet keeps state)."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models

        self._dlib = dlib
        self._predictor_path = face_recognition_models.pose_predictor_five_point_model_location()
        self._encoder_path = face_recognition_models.face_recognition_model_location()
        self._local = threading.local()
        self._models()  # load now, in the caller's thread: a bad install fails at start-up

    def _models(self) -> tuple[Any, Any]:
        models: tuple[Any, Any] | None = getattr(self._local, "models", None)
        if models is None:
            models = (
                self._dlib.shape_predictor(self._predictor_path),
                self._dlib.face_recognition_model_v1(self._encoder_path),
            )
            self._local.models = models
        return models

    def embed(self, frame_bgr: Image, boxes: Sequence[Box]) -> npt.NDArray[np.float32]:
        """Embeddings (len(boxes), 128) of the given boxes of a BGR frame."""
        return self.embed_crops([face_crop(frame_bgr, box) for box in boxes])

    def embed_crops(self, crops: Sequence[tuple[Image, Box]]) -> npt.NDArray[np.float32]:
        """Embeddings of face_crop() results: a crop (BGR) and the face's box inside it."""
        out = np.empty((len(crops), EMBEDDING_DIM), dtype=np.float32)
        predictor, encoder = self._models()
        for index, (crop_bgr, box) in enumerate(crops):
            crop = np.ascontiguousarray(cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB))
            rect = self._dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
            descriptor = encoder.compute_face_descriptor(crop, predictor(crop, rect))
            out[index] = np.asarray(descriptor, dtype=np.float32)
        return out


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

"""Face detection, 5-point landmarks and 128-d embeddings with dlib's models.

The models ship inside the face_recognition_models package: nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import dlib
import face_recognition_models
import numpy as np
import numpy.typing as npt

from facefleet.face.model import EMBEDDING_DIM, MODEL_NAME

# Stored with every embedding: embeddings of different models are not comparable.
__all__ = ["MODEL_NAME", "Box", "Face", "FaceEngine"]

DetectorKind = Literal["hog", "cnn"]


@dataclass(frozen=True, slots=True)
class Box:
    """A face box in full-resolution pixels; right and bottom are exclusive, as in slicing."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


# eq=False: the embedding is an array, and field-wise == on arrays has no single truth value.
@dataclass(frozen=True, slots=True, eq=False)
class Face:
    box: Box
    embedding: npt.NDArray[np.float32]  # (128,)
    # HOG: SVM margin (above 0 = detected at the default threshold); CNN: its confidence.
    score: float
    # Variance of the Laplacian over the face crop: low values mean a blurred face.
    sharpness: float
    # Shorter side of the box in pixels: small faces give less reliable embeddings.
    size: int


class FaceEngine:
    """Detects faces on a downscaled frame, embeds them from the full-resolution frame.

    Calls on one engine are serialised by a lock, because dlib's ResNet keeps its
    intermediate outputs inside the network object. dlib releases the GIL while it
    computes, so one engine per thread gives parallelism across cores.
    """

    def __init__(
        self,
        *,
        detector: DetectorKind = "hog",
        max_detection_width: int = 640,
        upsample: int = 0,
        detection_threshold: float = 0.0,
    ) -> None:
        """Load the models (a fraction of a second; reuse the engine).

        max_detection_width: frames wider than this are downscaled for detection only.
        upsample: times dlib doubles the detection frame, to find faces under ~80 pixels
            (each step costs about 4x the detection time).
        detection_threshold: HOG's adjust_threshold (raise it for fewer false positives);
            for the CNN detector, the minimum confidence kept.
        """
        if detector not in ("hog", "cnn"):
            raise ValueError(f"detector must be 'hog' or 'cnn', not {detector!r}")
        if max_detection_width < 1:
            raise ValueError("max_detection_width must be at least 1")
        if upsample < 0:
            raise ValueError("upsample must be 0 or more")
        self.detector: DetectorKind = detector
        self.max_detection_width = max_detection_width
        self.upsample = upsample
        self.detection_threshold = detection_threshold
        self._hog: Any = None
        self._cnn: Any = None
        if detector == "hog":
            self._hog = dlib.get_frontal_face_detector()
        else:
            self._cnn = dlib.cnn_face_detection_model_v1(
                face_recognition_models.cnn_face_detector_model_location()
            )
        self._shape_predictor: Any = dlib.shape_predictor(
            face_recognition_models.pose_predictor_five_point_model_location()
        )
        self._encoder: Any = dlib.face_recognition_model_v1(
            face_recognition_models.face_recognition_model_location()
        )
        self._lock = threading.Lock()

    def detect(self, frame_rgb: npt.NDArray[np.uint8]) -> list[Box]:
        frame = _as_rgb_frame(frame_rgb)
        with self._lock:
            return [box for box, _ in self._detect(frame)]

    def embed(
        self, frame_rgb: npt.NDArray[np.uint8], boxes: Sequence[Box]
    ) -> npt.NDArray[np.float32]:
        """Embeddings (len(boxes), 128) of the given full-resolution boxes."""
        frame = _as_rgb_frame(frame_rgb)
        with self._lock:
            return self._embed(frame, boxes)

    def analyze(self, frame_rgb: npt.NDArray[np.uint8]) -> list[Face]:
        frame = _as_rgb_frame(frame_rgb)
        with self._lock:
            detections = self._detect(frame)
            embeddings = self._embed(frame, [box for box, _ in detections])
        return [
            Face(
                box=box,
                embedding=embedding,
                score=score,
                sharpness=laplacian_variance(frame, box),
                size=min(box.width, box.height),
            )
            for (box, score), embedding in zip(detections, embeddings, strict=True)
        ]

    async def analyze_async(self, frame_rgb: npt.NDArray[np.uint8]) -> list[Face]:
        """analyze() in a worker thread, keeping the event loop free meanwhile."""
        return await asyncio.to_thread(self.analyze, frame_rgb)

    def _detect(self, frame: npt.NDArray[np.uint8]) -> list[tuple[Box, float]]:
        height, width = frame.shape[:2]
        small = frame
        if width > self.max_detection_width:
            scaled_height = max(1, round(height * self.max_detection_width / width))
            small = np.asarray(
                cv2.resize(
                    frame,
                    (self.max_detection_width, scaled_height),
                    interpolation=cv2.INTER_AREA,
                ),
                dtype=np.uint8,
            )
        # Per-axis factors from the sizes actually used, so rounding doesn't shift boxes.
        scale_x = width / small.shape[1]
        scale_y = height / small.shape[0]
        detections: Iterable[tuple[Any, float]]
        if self._hog is not None:
            rects, scores, _ = self._hog.run(small, self.upsample, self.detection_threshold)
            detections = zip(rects, scores, strict=True)
        else:
            found = self._cnn(small, self.upsample)
            detections = [
                (d.rect, d.confidence) for d in found if d.confidence >= self.detection_threshold
            ]
        results = []
        for rect, score in detections:
            # dlib's right and bottom are inclusive; clip to the frame, since dlib's boxes
            # may stick out of it for faces at the border.
            box = Box(
                left=max(0, round(rect.left() * scale_x)),
                top=max(0, round(rect.top() * scale_y)),
                right=min(width, round((rect.right() + 1) * scale_x)),
                bottom=min(height, round((rect.bottom() + 1) * scale_y)),
            )
            if box.width > 0 and box.height > 0:
                results.append((box, float(score)))
        return results

    def _embed(self, frame: npt.NDArray[np.uint8], boxes: Sequence[Box]) -> npt.NDArray[np.float32]:
        if not boxes:
            return np.empty((0, EMBEDDING_DIM), dtype=np.float32)
        shapes = dlib.full_object_detections()
        for box in boxes:
            rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
            shapes.append(self._shape_predictor(frame, rect))
        # One batched call: dlib runs the faces' chips through the network together.
        descriptors = self._encoder.compute_face_descriptor(frame, shapes)
        return np.array(descriptors, dtype=np.float32).reshape(len(boxes), EMBEDDING_DIM)


def laplacian_variance(frame_rgb: npt.NDArray[np.uint8], box: Box) -> float:
    """Sharpness of the face crop: variance of its Laplacian (low = blurred)."""
    crop = frame_rgb[box.top : box.bottom, box.left : box.right]
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(np.var(cv2.Laplacian(gray, cv2.CV_64F)))


def _as_rgb_frame(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    # dlib accepts only contiguous (rows, cols, 3) uint8 arrays.
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError("frame must be a uint8 numpy array")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must have shape (height, width, 3), not {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError("frame is empty")
    return np.ascontiguousarray(frame)

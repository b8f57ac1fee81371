"""Face work for the gallery: decode an upload, find exactly one face, embed it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from facefleet.api.errors import FacefleetError
from facefleet.face.model import MODEL_NAME

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from facefleet.face.engine import Box, Face, FaceEngine

# OpenCV, numpy and dlib are imported on first use, so the control plane starts (and
# restarts) quickly; only the gallery routes need them (the engine: AppState.face_engine).

THUMBNAIL_SIZE = 96
# HOG detection margin below which a detection does not count in an enrollment photo.
ENROLL_MIN_SCORE = 0.5


class UnprocessableImage(FacefleetError):
    status_code = 422


@dataclass(frozen=True)
class EnrolledFace:
    source_name: str
    box: Box
    embedding: npt.NDArray[np.float32]
    sharpness: float
    thumbnail: bytes


def decode(name: str, data: bytes, max_pixels: int) -> npt.NDArray[np.uint8]:
    from facefleet.face.images import ImageError, load_image_rgb

    if not data:
        raise UnprocessableImage(f"{name}: the file is empty")
    try:
        return load_image_rgb(data, max_pixels=max_pixels)
    except ImageError as exc:
        raise UnprocessableImage(f"{name}: {exc}") from exc


def thumbnail(image: npt.NDArray[np.uint8], box: Box) -> bytes:
    import cv2

    height, width = image.shape[:2]
    pad = max(box.width, box.height) // 4
    crop = image[
        max(0, box.top - pad) : min(height, box.bottom + pad),
        max(0, box.left - pad) : min(width, box.right + pad),
    ]
    small = cv2.resize(crop, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    return jpeg.tobytes() if ok else b""


async def analyze(
    engine: FaceEngine, name: str, data: bytes, max_pixels: int
) -> tuple[npt.NDArray[np.uint8], list[Face]]:
    image = await asyncio.to_thread(decode, name, data, max_pixels)
    faces = await engine.analyze_async(image)
    return image, faces


async def enroll_one(engine: FaceEngine, name: str, data: bytes, max_pixels: int) -> EnrolledFace:
    """The single face of an enrollment photo; anything else is a 422 naming the file."""
    image, found = await analyze(engine, name, data, max_pixels)
    # Upsampling finds small faces but also the odd weak false detection; an enrollment
    # photo's face is a clear one.
    faces = [f for f in found if f.score >= ENROLL_MIN_SCORE]
    if not faces:
        raise UnprocessableImage(f"{name}: no face found; use a clear, frontal photo")
    if len(faces) > 1:
        raise UnprocessableImage(
            f"{name}: {len(faces)} faces found; an enrollment photo must show one person"
        )
    face = faces[0]
    return EnrolledFace(
        source_name=name,
        box=face.box,
        embedding=face.embedding,
        sharpness=face.sharpness,
        thumbnail=await asyncio.to_thread(thumbnail, image, face.box),
    )


async def embed_crop(
    engine: FaceEngine, name: str, data: bytes, max_pixels: int
) -> npt.NDArray[np.float32] | None:
    """The embedding of the face a sighting's crop was cut around (None: no face found).

    The crop is centred on the tracked face, so of several detections the one nearest the
    centre is it. Any detection counts: this only groups and vetoes faces, it enrolls none.
    """
    try:
        image, faces = await analyze(engine, name, data, max_pixels)
    except UnprocessableImage:
        return None
    if not faces:
        return None
    height, width = image.shape[:2]

    def off_centre(face: Face) -> float:
        box = face.box
        return float(
            abs((box.left + box.right - width) / 2) + abs((box.top + box.bottom - height) / 2)
        )

    return min(faces, key=off_centre).embedding


__all__ = [
    "MODEL_NAME",
    "EnrolledFace",
    "UnprocessableImage",
    "analyze",
    "embed_crop",
    "enroll_one",
]

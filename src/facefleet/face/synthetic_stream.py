"""A moving camera stream made of real face photos composited at a chosen face size.

Recall is measured on it: each photo's face is cut out with a margin, scaled so that its
face box is ``face_width`` pixels wide, blended into a textured background and moved across
the frame; every frame also gets fresh sensor noise, so a motion gate sees what a real
camera gives it. The ground-truth boxes of every frame are known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from facefleet.face.engine import Box

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, eq=False)
class FaceSprite:
    """A person's head cut from a photo (BGR), with the face box inside the cut-out."""

    person: str
    image: Image
    face: Box


def cut_sprite(person: str, photo_bgr: Image, face: Box, margin: float = 0.7) -> FaceSprite:
    """The face with ``margin`` face widths around it (clipped to the photo)."""
    height, width = photo_bgr.shape[:2]
    pad = round(margin * face.width)
    left, top = max(0, face.left - pad), max(0, face.top - pad)
    right, bottom = min(width, face.right + pad), min(height, face.bottom + pad)
    crop = np.ascontiguousarray(photo_bgr[top:bottom, left:right])
    inner = Box(face.left - left, face.top - top, face.right - left, face.bottom - top)
    return FaceSprite(person, crop, inner)


def textured_background(width: int, height: int, seed: int = 0) -> Image:
    """A deterministic scene-like background: soft shapes, an edge or two, fine texture."""
    rng = np.random.default_rng(seed)
    # Muted colours: a grey level per patch with a little tint.
    grey = rng.integers(60, 190, size=(9, 16, 1))
    coarse = np.clip(grey + rng.integers(-25, 25, size=(9, 16, 3)), 0, 255).astype(np.uint8)
    base = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    for _ in range(12):  # furniture and walls: hard edges a detector must not mistake
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(40, width // 4)), y0 + int(rng.integers(40, height // 4))
        colour = tuple(int(c) for c in rng.integers(30, 220, size=3))
        cv2.rectangle(base, (x0, y0), (x1, y1), colour, thickness=-1)
    texture = cv2.GaussianBlur(rng.normal(0, 12, size=(height, width)), (0, 0), 1.5)
    background: Image = np.clip(base + texture[..., None], 0, 255).astype(np.uint8)
    return background


class CompositeStream:
    """Frames of ``size`` at ``fps`` with every sprite moving back and forth on its own row.

    ``speed`` is in face widths per second. Each sprite's row and phase come from its index,
    so the same arguments always give the same frames (noise included).
    """

    def __init__(
        self,
        sprites: Sequence[FaceSprite],
        face_width: int,
        *,
        size: tuple[int, int] = (1920, 1080),
        fps: float = 5.0,
        speed: float = 1.5,
        noise: float = 2.0,
        seed: int = 0,
    ) -> None:
        if not sprites:
            raise ValueError("a composite stream needs at least one sprite")
        self.size = size
        self.fps = fps
        self.face_width = face_width
        self._noise = noise
        self._seed = seed
        self._background = textured_background(*size, seed=seed)
        self._layers = [self._scaled(sprite, face_width) for sprite in sprites]
        width, height = size
        rows = len(sprites)
        self._paths: list[tuple[float, float, float]] = []  # (y, x phase, travel)
        for index, (image, _, _) in enumerate(self._layers):
            lane = height / rows
            y = lane * index + (lane - image.shape[0]) / 2
            travel = max(1.0, width - image.shape[1])
            self._paths.append((max(0.0, y), travel * ((index * 0.37) % 1.0), travel))
        self._speed_px = speed * face_width

    @property
    def people(self) -> list[str]:
        return [person for _, _, (person, _) in self._layers]

    @staticmethod
    def _scaled(
        sprite: FaceSprite, face_width: int
    ) -> tuple[Image, npt.NDArray[np.float32], tuple[str, Box]]:
        scale = face_width / sprite.face.width
        height, width = sprite.image.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        image = np.asarray(cv2.resize(sprite.image, size, interpolation=interpolation))
        # A feathered ellipse: the head blends into the scene instead of a pasted rectangle.
        mask = np.zeros((size[1], size[0]), dtype=np.float32)
        cv2.ellipse(
            mask,
            (size[0] // 2, size[1] // 2),
            (max(1, size[0] // 2 - 1), max(1, size[1] // 2 - 1)),
            0,
            0,
            360,
            1.0,
            thickness=-1,
        )
        mask = np.asarray(
            cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.04 * size[0]))[..., None], dtype=np.float32
        )
        face = sprite.face
        box = Box(
            round(face.left * scale),
            round(face.top * scale),
            round(face.right * scale),
            round(face.bottom * scale),
        )
        return image.astype(np.uint8), mask, (sprite.person, box)

    def _position(self, index: int, frame_index: int) -> tuple[int, int]:
        y, phase, travel = self._paths[index]
        distance = phase + self._speed_px * frame_index / self.fps
        # Back and forth along the row (a triangle wave over the travel).
        offset = distance % (2 * travel)
        x = offset if offset <= travel else 2 * travel - offset
        return math.floor(x), math.floor(y)

    def truth(self, frame_index: int) -> dict[str, Box]:
        """Each person's face box in the frame."""
        boxes = {}
        for index, (_, _, (person, face)) in enumerate(self._layers):
            x, y = self._position(index, frame_index)
            boxes[person] = Box(face.left + x, face.top + y, face.right + x, face.bottom + y)
        return boxes

    def frame(self, frame_index: int) -> Image:
        canvas = self._background.astype(np.float32)
        width, height = self.size
        for index, (image, mask, _) in enumerate(self._layers):
            x, y = self._position(index, frame_index)
            h = min(image.shape[0], height - y)
            w = min(image.shape[1], width - x)
            region = canvas[y : y + h, x : x + w]
            alpha = mask[:h, :w]
            region *= 1 - alpha
            region += alpha * image[:h, :w]
        if self._noise > 0:
            rng = np.random.default_rng((self._seed, frame_index))
            canvas += rng.normal(0, self._noise, size=canvas.shape).astype(np.float32)
        return np.clip(canvas, 0, 255).astype(np.uint8)


__all__ = ["CompositeStream", "FaceSprite", "cut_sprite", "textured_background"]

"""A synthetic camera video made with OpenCV alone: no network, no external data."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

# Bump when the drawing changes, so existing demo files are regenerated.
_GENERATOR_VERSION = 1


def _params_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def make_demo_video(
    path: str | os.PathLike[str],
    *,
    seconds: float = 10,
    fps: int = 15,
    size: tuple[int, int] = (640, 360),
    label: str = "facefleet demo",
) -> Path:
    """Write a looping demo video (MJPG in AVI) and return its path.

    Every motion has the clip's length as its period, so the clip loops without a jump.
    A ``<name>.json`` file beside the video records the parameters: when it matches,
    the existing video is kept. The video is written under a temporary name and moved
    into place, so a reader never sees a half-written file.
    """
    out = Path(path)
    if out.suffix.lower() != ".avi":
        raise ValueError("the demo video is MJPG in an AVI container: use a .avi path")
    width, height = size
    frame_count = round(seconds * fps)
    if fps <= 0 or frame_count <= 0 or width < 16 or height < 16:
        raise ValueError("need fps > 0, seconds * fps >= 1 and a size of at least 16x16")
    params = {
        "version": _GENERATOR_VERSION,
        "frames": frame_count,
        "fps": fps,
        "size": [width, height],
        "label": label,
    }
    sidecar = _params_path(out)
    if out.is_file() and out.stat().st_size > 0 and sidecar.is_file():
        with contextlib.suppress(OSError, ValueError):
            if json.loads(sidecar.read_text()) == params:
                return out

    out.parent.mkdir(parents=True, exist_ok=True)
    # The extension must stay .avi: OpenCV picks the container from it.
    tmp = out.with_name(f".{out.stem}.{secrets.token_hex(6)}.tmp.avi")
    try:
        writer = cv2.VideoWriter(
            str(tmp), cv2.CAP_ANY, cv2.VideoWriter.fourcc(*"MJPG"), float(fps), (width, height)
        )
        try:
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write an MJPG video to {tmp}")
            for index in range(frame_count):
                writer.write(_draw_frame(index, frame_count, fps, width, height, label))
        finally:
            writer.release()
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sidecar.write_text(json.dumps(params, sort_keys=True))
    return out


def _draw_frame(
    index: int, frame_count: int, fps: int, width: int, height: int, label: str
) -> npt.NDArray[np.uint8]:
    phase = 2 * math.pi * index / frame_count
    image = np.empty((height, width, 3), dtype=np.uint8)
    # A slowly shifting vertical gradient, so consecutive frames differ everywhere.
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    shade = 40 + 30 * (0.5 + 0.5 * math.sin(phase))
    image[:, :, 0] = (shade + 60 * rows).astype(np.uint8)
    image[:, :, 1] = (30 + 40 * rows).astype(np.uint8)
    image[:, :, 2] = (20 + 20 * rows).astype(np.uint8)

    unit = min(width, height)
    # A ball moving on a Lissajous curve.
    cx = int(width / 2 + width * 0.35 * math.sin(phase))
    cy = int(height / 2 + height * 0.3 * math.sin(2 * phase))
    cv2.circle(image, (cx, cy), max(4, unit // 10), (60, 200, 255), -1, cv2.LINE_AA)
    # A square sliding along the bottom.
    side = max(4, unit // 8)
    sx = int((width - side) * (0.5 + 0.5 * math.cos(phase)))
    sy = height - side - max(2, unit // 20)
    cv2.rectangle(image, (sx, sy), (sx + side, sy + side), (90, 220, 90), -1)
    # A clock hand turning once per loop.
    center = (width - unit // 6, unit // 6)
    radius = max(4, unit // 8)
    tip = (
        int(center[0] + radius * math.sin(phase)),
        int(center[1] - radius * math.cos(phase)),
    )
    cv2.circle(image, center, radius, (230, 230, 230), 1, cv2.LINE_AA)
    cv2.line(image, center, tip, (230, 230, 230), 2, cv2.LINE_AA)

    scale = max(0.3, unit / 720)
    thickness = max(1, round(unit / 360))
    seconds = index / fps
    lines = (
        label,
        f"frame {index + 1:05d}/{frame_count}",
        f"t {int(seconds // 60):02d}:{seconds % 60:05.2f}",
    )
    line_height = int(32 * scale) + 4
    for number, text in enumerate(lines):
        origin = (8, 8 + line_height * (number + 1))
        cv2.putText(
            image,
            text,
            origin,
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            thickness + 2,
            cv2.LINE_AA,
        )
        cv2.putText(
            image,
            text,
            origin,
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )
    return image

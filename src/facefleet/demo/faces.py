"""A demo camera with a real face and no network: the astronaut portrait that ships inside
scikit-image (Eileen Collins, NASA, public domain) is animated into a looping video, and
the same portrait is what the demo enrolls."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

DEMO_PERSON = "Eileen Collins"
_RESOURCE = ("skimage", "data", "astronaut.png")


def portrait_path() -> Path:
    spec = importlib.util.find_spec(_RESOURCE[0])
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the demo portrait comes with scikit-image: pip install 'facefleet[demo]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_RESOURCE[1:])
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the scikit-image installation")
    return path


def portrait_bgr() -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(portrait_path()), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError("the demo portrait could not be decoded")
    return np.asarray(image, dtype=np.uint8)


def make_face_video(
    path: str | os.PathLike[str],
    *,
    seconds: float = 12,
    fps: int = 15,
    size: tuple[int, int] = (640, 360),
) -> Path:
    """Write a looping video in which the portrait walks across the frame, leaves, and
    comes back: each pass is one sighting. Kept when it exists with the same parameters."""
    out = Path(path)
    params = {"seconds": seconds, "fps": fps, "size": list(size), "kind": "face-demo-1"}
    meta = out.with_name(out.name + ".json")
    if out.exists() and meta.exists() and json.loads(meta.read_text()) == params:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    portrait = portrait_bgr()
    scale = (height * 0.9) / portrait.shape[0]
    face = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    fh, fw = face.shape[:2]
    frames = max(1, int(seconds * fps))
    tmp = out.with_name(out.name + ".tmp.avi")
    writer = cv2.VideoWriter(
        str(tmp), cv2.CAP_ANY, cv2.VideoWriter.fourcc(*"MJPG"), float(fps), (width, height)
    )
    try:
        for i in range(frames):
            phase = i / frames
            frame = np.full((height, width, 3), (40, 44, 52), np.uint8)
            # Visible for the first 70% of the loop, moving left to right; then an empty scene.
            if phase < 0.7:
                x = int(-fw * 0.2 + (width - fw * 0.6) * (phase / 0.7))
                y = (height - fh) // 2
                x0, x1 = max(0, x), min(width, x + fw)
                frame[y : y + fh, x0:x1] = face[:, x0 - x : x1 - x]
            cv2.putText(
                frame,
                f"facefleet demo face  {i / fps:5.1f}s",
                (12, height - 14),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                (220, 220, 220),
                1,
                cv2.LINE_AA,
            )
            writer.write(frame)
    finally:
        writer.release()
    os.replace(tmp, out)
    meta.write_text(json.dumps(params))
    return out

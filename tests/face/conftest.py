"""Shared fixtures of the face-pipeline tests: the fixture photos and one loaded engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facefleet.face.engine import FaceEngine
from facefleet.face.images import load_image_rgb

PhotoLoader = Callable[[str], npt.NDArray[np.uint8]]


@pytest.fixture(scope="session")
def load_photo(fixtures_dir: Path) -> PhotoLoader:
    """Loads faces/<relative path> of the fixtures as an RGB frame."""

    def load(relative_path: str) -> npt.NDArray[np.uint8]:
        path = fixtures_dir / "faces" / relative_path
        assert path.is_file(), f"fixture photo missing: {path}"
        return load_image_rgb(path.read_bytes())

    return load


@pytest.fixture(scope="session")
def engine() -> FaceEngine:
    """The default HOG engine, loaded once for the session."""
    return FaceEngine()

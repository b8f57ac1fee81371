"""FaceEngine: coordinates, the fields of a Face, its entry points and input checks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facefleet.face.engine import Box, FaceEngine, laplacian_variance
from facefleet.face.gallery import EMBEDDING_DIM

from .conftest import PhotoLoader


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    width = max(0, min(a.right, b.right) - max(a.left, b.left))
    height = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = width * height
    return inter / (a.width * a.height + b.width * b.height - inter)


def test_boxes_of_a_downscaled_detection_are_in_full_resolution_pixels(
    engine: FaceEngine, load_photo: PhotoLoader
) -> None:
    frame = load_photo("enroll/joe_biden.jpg")  # 970 pixels wide: detected at 640
    [downscaled] = engine.analyze(frame)
    [native] = FaceEngine(max_detection_width=frame.shape[1]).analyze(frame)
    assert overlap(downscaled.box, native.box) > 0.8
    assert np.linalg.norm(downscaled.embedding - native.embedding) < 0.1
    assert 0 <= downscaled.box.left < downscaled.box.right <= frame.shape[1]
    assert 0 <= downscaled.box.top < downscaled.box.bottom <= frame.shape[0]


def test_face_carries_embedding_score_sharpness_and_size(
    engine: FaceEngine, load_photo: PhotoLoader
) -> None:
    frame = load_photo("probe/kit_harington_2.jpg")
    [face] = engine.analyze(frame)
    assert face.embedding.dtype == np.float32
    assert face.embedding.shape == (EMBEDDING_DIM,)
    assert face.score > 0
    assert face.size == min(face.box.width, face.box.height) > 80
    assert face.sharpness == pytest.approx(laplacian_variance(frame, face.box))
    blurred = np.asarray(cv2.GaussianBlur(frame, (0, 0), sigmaX=4), dtype=np.uint8)
    assert laplacian_variance(blurred, face.box) < face.sharpness / 4


def test_embed_of_detected_boxes_equals_analyze(
    engine: FaceEngine, load_photo: PhotoLoader
) -> None:
    frame = load_photo("probe/two_people.jpg")
    faces = engine.analyze(frame)
    boxes = engine.detect(frame)
    assert boxes == [face.box for face in faces]
    embeddings = engine.embed(frame, boxes)
    assert embeddings.shape == (2, EMBEDDING_DIM)
    assert embeddings.dtype == np.float32
    np.testing.assert_array_equal(embeddings, np.stack([face.embedding for face in faces]))


async def test_analyze_async_gives_the_same_faces(
    engine: FaceEngine, load_photo: PhotoLoader
) -> None:
    frame = load_photo("probe/rose_leslie_2.jpg")
    [expected] = engine.analyze(frame)
    [face] = await engine.analyze_async(frame)
    assert face.box == expected.box
    np.testing.assert_array_equal(face.embedding, expected.embedding)


def test_frame_without_faces_gives_nothing(engine: FaceEngine) -> None:
    frame = np.full((360, 640, 3), 127, dtype=np.uint8)
    assert engine.analyze(frame) == []
    assert engine.embed(frame, []).shape == (0, EMBEDDING_DIM)


def test_non_contiguous_frame_is_accepted(engine: FaceEngine, load_photo: PhotoLoader) -> None:
    frame = load_photo("probe/kit_harington_2.jpg")
    [expected] = engine.analyze(frame)
    # The same pixels as a view into a wider array, so rows are not contiguous.
    wider = np.zeros((frame.shape[0], frame.shape[1] + 16, 3), dtype=np.uint8)
    wider[:, : frame.shape[1]] = frame
    view = wider[:, : frame.shape[1]]
    assert not view.flags.c_contiguous
    [face] = engine.analyze(view)
    assert face.box == expected.box


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 4), dtype=np.uint8),
        np.zeros((10, 10, 3), dtype=np.float32),
        np.zeros((0, 10, 3), dtype=np.uint8),
    ],
    ids=["grey", "rgba", "float", "empty"],
)
def test_frames_that_are_not_rgb_uint8_are_refused(engine: FaceEngine, frame: np.ndarray) -> None:
    with pytest.raises(ValueError, match="frame"):
        engine.analyze(frame)


@pytest.mark.parametrize(
    "options",
    [{"detector": "sift"}, {"max_detection_width": 0}, {"upsample": -1}],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FaceEngine(**options)  # type: ignore[arg-type]

"""numpy's face ResNet against dlib's: the same descriptors, and dlib's whenever numpy's
cannot be trusted (weights it cannot read, or a disagreement at start-up)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import face_recognition_models
import numpy as np
import pytest

from facefleet.face.descriptor import (
    DlibDescriptor,
    NumpyDescriptor,
    agreement,
    checked,
    load_descriptor,
)
from facefleet.face.embedder import FaceEmbedder
from facefleet.face.engine import FaceEngine
from facefleet.face.resnet_weights import Dense, WeightsError, load_resnet, parse_resnet

from .conftest import PhotoLoader

MODEL = Path(face_recognition_models.face_recognition_model_location())
# Observed: about 3e-7 (float32 in another summation order); a real bug is orders above.
MAX_DIFF = 1e-4

PHOTOS = [
    "enroll/barack_obama.jpg",
    "enroll/joe_biden.jpg",
    "enroll/rose_leslie.jpg",
    "enroll/lin_manuel_miranda.png",
    "probe/kit_harington_2.jpg",
    "probe/barack_obama_small.jpg",
    "probe/two_people.jpg",  # two faces: one batch
]


@pytest.fixture(scope="module")
def reference() -> DlibDescriptor:
    return DlibDescriptor(str(MODEL))


@pytest.fixture(scope="module")
def numpy_embedder() -> FaceEmbedder:
    return FaceEmbedder("numpy")


@pytest.mark.parametrize("photo", PHOTOS)
def test_numpy_descriptors_equal_dlibs_on_fixture_photos(
    photo: str, load_photo: PhotoLoader, engine: FaceEngine, numpy_embedder: FaceEmbedder
) -> None:
    rgb = load_photo(photo)
    faces = engine.analyze(rgb)  # landmarks and descriptors by dlib alone
    assert faces, f"no face found in {photo}"
    assert numpy_embedder.descriptor_name == "numpy"
    bgr = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)
    ours = numpy_embedder.embed(bgr, [f.box for f in faces])
    assert ours.shape == (len(faces), 128) and ours.dtype == np.float32
    for face, mine in zip(faces, ours, strict=True):
        assert np.abs(mine - face.embedding).max() < MAX_DIFF
        assert np.linalg.norm(mine - face.embedding) < 10 * MAX_DIFF


def test_the_default_embedder_is_numpy_on_one_blas_thread() -> None:
    embedder = FaceEmbedder()
    assert embedder.descriptor_name == "numpy"
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "1")
    assert "numpy ResNet" in embedder.description
    assert f", {threads} thread" in embedder.description
    assert embedder.embed(np.zeros((10, 10, 3), dtype=np.uint8), []).shape == (0, 128)


def test_dlib_is_there_on_request(reference: DlibDescriptor) -> None:
    descriptor = load_descriptor("dlib")
    assert descriptor.name == "dlib"
    assert "dlib ResNet" in descriptor.description


def test_the_start_up_check_passes_on_the_real_weights(reference: DlibDescriptor) -> None:
    assert agreement(NumpyDescriptor(str(MODEL)), reference) == ""


def test_weights_dlib_does_not_have_fail_the_check_and_dlib_is_used(
    tmp_path: Path, reference: DlibDescriptor, caplog: pytest.LogCaptureFixture
) -> None:
    # The same file with the last layer's weights negated: a network that parses
    # and runs, but is not the one dlib runs.
    data = MODEL.read_bytes()
    dense = load_resnet(MODEL).layers[-1]
    assert isinstance(dense, Dense)
    block = dense.weight.astype("<f4").tobytes()
    start = data.index(block)
    other = tmp_path / "other.dat"
    other.write_bytes(
        data[:start] + (-dense.weight).astype("<f4").tobytes() + data[start + len(block) :]
    )

    candidate = NumpyDescriptor(str(other))
    assert "distance" in agreement(candidate, reference)
    with caplog.at_level(logging.WARNING, logger="facefleet.face.descriptor"):
        chosen = checked(lambda: NumpyDescriptor(str(other)), reference)
    assert chosen is reference
    assert "disagrees with dlib's" in caplog.text


@pytest.mark.parametrize("keep", [0, 5, 300, "half", "all but one"])
def test_a_truncated_weights_file_is_a_clear_error_and_dlib_is_used(
    keep: int | str,
    tmp_path: Path,
    reference: DlibDescriptor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = MODEL.read_bytes()
    size = {"half": len(data) // 2, "all but one": len(data) - 1}.get(str(keep), keep)
    assert isinstance(size, int)
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[:size])

    with pytest.raises(WeightsError, match=r"truncated\.dat: the file ends early"):
        load_resnet(truncated)
    with caplog.at_level(logging.WARNING, logger="facefleet.face.descriptor"):
        chosen = checked(lambda: NumpyDescriptor(str(truncated)), reference)
    assert chosen is reference
    assert "numpy face descriptor unavailable, using dlib's" in caplog.text
    assert "ends early" in caplog.text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x02" + b"\x00" * 64, "add_loss_layer version 2"),
        (b"\x01\x01\x01\x0dloss_metric_9", "expected the metric loss"),
        (bytes(range(256)) * 4, "not an integer"),
    ],
)
def test_a_file_of_another_kind_is_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(WeightsError, match=message):
        parse_resnet(data, "other.dat")


def test_data_after_the_network_is_an_error() -> None:
    with pytest.raises(WeightsError, match="unexpected data after the network"):
        parse_resnet(MODEL.read_bytes() + b"\x00", "longer.dat")


def test_a_missing_file_falls_back_to_dlib(
    tmp_path: Path, reference: DlibDescriptor, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="facefleet.face.descriptor"):
        chosen = checked(lambda: NumpyDescriptor(str(tmp_path / "absent.dat")), reference)
    assert chosen is reference
    assert "absent.dat" in caplog.text

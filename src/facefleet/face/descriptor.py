"""The 128-d face descriptor from a face's 5-point landmarks: numpy's ResNet, or dlib's.

Both compute dlib's face ResNet on the 150x150 chip dlib aligns from the landmarks
(get_face_chip, padding 0.25: what compute_face_descriptor cuts). ``numpy`` runs it in
numpy's bundled OpenBLAS (facefleet.face.resnet_numpy), about 6x faster than the BLAS-less
dlib-bin wheel; ``dlib`` is dlib's own. ``numpy`` is used once it has loaded and agreed
with dlib on a test chip at start-up, else dlib's, with a warning saying why.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from facefleet.face.build import dlib_build

log = logging.getLogger(__name__)

DescriptorName = Literal["numpy", "dlib"]
Image = npt.NDArray[np.uint8]
CHIP_SIZE = 150
CHIP_PADDING = 0.25
# The two agree to about 1e-6 (float32, other summation order); a descriptor this far off
# is a different computation, not rounding. Two photos of one person lie about 0.4 apart.
SELF_CHECK_MAX_DIFF = 1e-3
SELF_CHECK_MAX_DISTANCE = 0.01


class Descriptor(Protocol):
    name: str

    @property
    def description(self) -> str: ...

    def compute(self, faces: Sequence[tuple[Image, Any]]) -> npt.NDArray[np.float32]:
        """(len(faces), 128) descriptors of (RGB image, dlib full_object_detection) pairs."""
        ...


class DlibDescriptor:
    """dlib's ResNet. Each thread gets its own copy: the network keeps its outputs."""

    name = "dlib"

    def __init__(self, model_path: str) -> None:
        import dlib

        self._dlib = dlib
        self._path = model_path
        self._local = threading.local()
        self._net()  # load now: a bad install fails at start-up

    def _net(self) -> Any:
        net = getattr(self._local, "net", None)
        if net is None:
            net = self._local.net = self._dlib.face_recognition_model_v1(self._path)
        return net

    @property
    def description(self) -> str:
        return f"dlib ResNet ({dlib_build()})"

    def compute(self, faces: Sequence[tuple[Image, Any]]) -> npt.NDArray[np.float32]:
        net = self._net()
        out = np.empty((len(faces), 128), dtype=np.float32)
        for index, (image, shape) in enumerate(faces):
            out[index] = np.asarray(net.compute_face_descriptor(image, shape), dtype=np.float32)
        return out

    def of_chip(self, chip: Image) -> npt.NDArray[np.float32]:
        """The descriptor of an aligned chip, as compute_face_descriptor would give."""
        return np.asarray(self._net().compute_face_descriptor(chip), dtype=np.float32)


class NumpyDescriptor:
    """dlib's ResNet in numpy, every face of a call in one batch. Thread-safe."""

    name = "numpy"

    def __init__(self, model_path: str) -> None:
        import dlib

        from facefleet.face.resnet_numpy import NumpyResNet
        from facefleet.face.resnet_weights import load_resnet

        self._dlib = dlib
        self.net = NumpyResNet(load_resnet(Path(model_path)))
        _one_blas_thread()

    @property
    def description(self) -> str:
        return f"numpy ResNet ({numpy_blas()})"

    def compute(self, faces: Sequence[tuple[Image, Any]]) -> npt.NDArray[np.float32]:
        if not faces:
            return np.empty((0, 128), dtype=np.float32)
        chips = np.stack(
            [
                self._dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
                for image, shape in faces
            ]
        )
        return self.net.descriptors(chips)


def _one_blas_thread() -> None:
    """One BLAS thread a call: parallelism comes from the compute processes and threads
    (facefleet.worker.pipeline.compute), and OpenBLAS's own pool would compete with them.
    An operator's OPENBLAS_NUM_THREADS wins."""
    if "OPENBLAS_NUM_THREADS" in os.environ:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def numpy_blas() -> str:
    """numpy's BLAS library, version and threads, as it runs in this process."""
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in str(info.get("filepath", "")):
            threads = info.get("num_threads")
            library = f"{info.get('internal_api')} {info.get('version')}"
            return f"numpy {np.__version__}, {library}, {threads} thread{'s' * (threads != 1)}"
    return f"numpy {np.__version__}, no BLAS found"


def self_check_chip() -> Image:
    """A fixed 150x150 test chip: smooth colour blobs from a seeded generator (any input
    exercises every weight; no photo needs to ship)."""
    rng = np.random.default_rng(20170214)
    blobs = rng.integers(0, 256, size=(10, 10, 3), dtype=np.uint8)
    chip = cv2.resize(blobs, (CHIP_SIZE, CHIP_SIZE), interpolation=cv2.INTER_LINEAR)
    return np.asarray(chip, dtype=np.uint8)


def agreement(numpy_descriptor: NumpyDescriptor, dlib_descriptor: DlibDescriptor) -> str:
    """Empty if the two give the same descriptor of the test chip, else how they differ."""
    chip = self_check_chip()
    ours = numpy_descriptor.net.descriptors(chip[None])[0]
    reference = dlib_descriptor.of_chip(chip)
    diff = float(np.abs(ours - reference).max())
    distance = float(np.linalg.norm(ours - reference))
    if diff > SELF_CHECK_MAX_DIFF or distance > SELF_CHECK_MAX_DISTANCE or not np.isfinite(diff):
        return f"max difference {diff:.3g}, distance {distance:.3g}"
    return ""


def load_descriptor(name: DescriptorName, model_path: str | None = None) -> Descriptor:
    """The descriptor ``name`` asks for, on the model of face_recognition_models unless
    ``model_path`` names another; ``numpy`` falls back to dlib's as ``checked`` says."""
    import face_recognition_models

    path = model_path or face_recognition_models.face_recognition_model_location()
    reference = DlibDescriptor(path)
    if name == "dlib":
        return reference
    return checked(lambda: NumpyDescriptor(path), reference)


def checked(load: Callable[[], NumpyDescriptor], reference: DlibDescriptor) -> Descriptor:
    """numpy's descriptor if it loads and agrees with ``reference`` on the test chip, else
    ``reference``, with a warning that says why."""
    try:
        candidate = load()
    except (OSError, ValueError) as exc:  # WeightsError is a ValueError
        log.warning("numpy face descriptor unavailable, using dlib's: %s", exc)
        return reference
    if problem := agreement(candidate, reference):
        log.warning("numpy face descriptor disagrees with dlib's (%s), using dlib's", problem)
        return reference
    return candidate


__all__ = [
    "DescriptorName",
    "DlibDescriptor",
    "NumpyDescriptor",
    "agreement",
    "checked",
    "load_descriptor",
    "numpy_blas",
    "self_check_chip",
]

"""Where a worker's face work runs: a bounded pool shared by all its cameras.

dlib's HOG scan releases the GIL, but its landmarks and ResNet descriptor and the YuNet
detector do not, so threads would run most of the work one at a time. ``ProcessCompute``
runs it in a fixed set of processes (one per core by default) instead. Each camera's frames go
to one process, which keeps that camera's motion gate.

Embeddings need only the faces' crops, which are small: they go to whichever process has
the least work queued, so one camera's faces do not wait behind its neighbours' frames.

The budget: a frame still waiting for its process ``frame_budget`` seconds after it was
captured is dropped there, unprocessed, and counted; under overload a worker processes
fewer frames of each camera, never older ones.

``ThreadCompute`` does the same work in threads of this process (tests, and a single-camera
worker that would rather not start processes); ``AnalyzerCompute`` adapts anything with
FaceEngine's ``analyze()`` (every face of every frame embedded).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from facefleet.face.descriptor import DescriptorName
from facefleet.face.detectors import Detection, DetectorName, make_detector
from facefleet.face.engine import Box, Face
from facefleet.face.finder import FinderConfig

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


class ComputeError(RuntimeError):
    """The face work failed (its process died, or it raised)."""


@dataclass(frozen=True)
class ComputeSpec:
    """What every camera's work is made of (picklable: it is sent to the processes)."""

    detector: DetectorName = "hog"
    detection_threshold: float | None = None
    embedder: DescriptorName = "numpy"
    finder: FinderConfig = field(default_factory=FinderConfig)


@dataclass(frozen=True)
class FrameFaces:
    detections: list[Detection]  # frame pixels
    sharpness: list[float]  # per detection
    regions: int  # regions searched
    pixels: int  # scaled pixels given to the detector
    motion: bool
    cut: bool  # the whole picture changed: faces followed by their boxes must be checked
    cpu_ms: float  # CPU time of the search, in the process that did it


class CameraCompute(Protocol):
    """One camera's share of the pool. Calls come one at a time, frame by frame."""

    async def find(
        self, image_bgr: Image, hints: Sequence[Box], deadline: float
    ) -> FrameFaces | None:
        """The faces of a frame; None when its deadline (monotonic clock) passed first."""
        ...

    async def embed(self, image_bgr: Image, boxes: Sequence[Box]) -> npt.NDArray[np.float32]:
        """Embeddings (len(boxes), 128) of boxes of a frame (the one last given to find())."""
        ...

    def close(self) -> None: ...


class FaceCompute(Protocol):
    """A worker's pool: one CameraCompute per stream."""

    @property
    def description(self) -> str:
        """Detector, workers, dlib build and embedder, for the start-up log."""
        ...

    @property
    def build(self) -> str:
        """The dlib build the work runs on (facefleet.face.build), for the metrics."""
        ...

    @property
    def embedder(self) -> str:
        """What computes the face descriptors (facefleet.face.descriptor), for the metrics."""
        ...

    def camera(self) -> CameraCompute: ...


class _Work:
    """The work itself, in whichever process or thread runs it."""

    def __init__(self, spec: ComputeSpec) -> None:
        from facefleet.face.embedder import FaceEmbedder

        self.spec = spec
        self.detector = make_detector(spec.detector, spec.detection_threshold)
        self.embedder = FaceEmbedder(spec.embedder)
        self._finders: dict[int, Any] = {}

    def find(self, camera: int, frame: Image, hints: Sequence[Box]) -> FrameFaces:
        from facefleet.face.embedder import sharpness
        from facefleet.face.finder import FaceFinder

        started = time.thread_time()
        finder = self._finders.get(camera)
        if finder is None:
            finder = self._finders[camera] = FaceFinder(self.detector, self.spec.finder)
        found = finder.find(frame, hints)
        return FrameFaces(
            detections=found.detections,
            sharpness=[sharpness(frame, d.box) for d in found.detections],
            regions=len(found.regions),
            pixels=found.pixels,
            motion=found.motion,
            cut=found.cut,
            cpu_ms=(time.thread_time() - started) * 1000,
        )

    def embed(self, crops: Sequence[tuple[Image, Box]]) -> npt.NDArray[np.float32]:
        return self.embedder.embed_crops(crops)

    def close(self, camera: int) -> None:
        self._finders.pop(camera, None)


# Parallelism comes from the processes: a thread pool per library (OpenBLAS under dlib's
# BLAS build, OpenMP under YuNet) would only compete with them, and busy-waits between
# calls. Set in the environment the processes start with, before any library loads.
_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def _child_environment() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in _ONE_THREAD}
    for name in _ONE_THREAD:
        os.environ.setdefault(name, "1")  # an operator's own setting wins
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _serve(conn: Connection, spec: ComputeSpec) -> None:
    """A compute process: answers requests until its pipe closes."""
    import cv2

    cv2.setNumThreads(1)
    from facefleet.face.build import dlib_build

    try:
        work = _Work(spec)
    except Exception as exc:
        conn.send(("failed", 0, f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", 0, (str(dlib_build()), work.embedder.description)))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        kind, request, camera = message[:3]
        try:
            if kind == "find":
                shape, hints, deadline = message[3:]
                data = conn.recv_bytes()
                if time.monotonic() > deadline:
                    conn.send(("dropped", request, None))
                    continue
                frame = np.frombuffer(data, dtype=np.uint8).reshape(shape)
                conn.send(("ok", request, work.find(camera, frame, hints)))
            elif kind == "embed":
                conn.send(("ok", request, work.embed(message[3])))
            elif kind == "close":
                work.close(camera)
            elif kind == "stop":
                return
        except Exception as exc:
            conn.send(("error", request, f"{type(exc).__name__}: {exc}"))


class _Process:
    """One compute process and the two threads that talk to it."""

    def __init__(self, context: Any, spec: ComputeSpec, index: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, spec), name=f"facefleet-face-{index}", daemon=True
        )
        self.process.start()
        child.close()
        self.cameras = 0
        self.build = ""
        self.embedder = ""
        self.alive = True
        self._ready = threading.Event()
        self._error = ""
        self._outbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._lock = threading.Lock()
        threading.Thread(
            target=self._send_loop, name=f"{self.process.name} send", daemon=True
        ).start()
        threading.Thread(
            target=self._receive_loop, name=f"{self.process.name} recv", daemon=True
        ).start()

    def wait_ready(self, timeout: float) -> tuple[str, str]:
        """The dlib build and the embedder the process runs, once it has loaded them."""
        if not self._ready.wait(timeout):
            raise ComputeError(f"{self.process.name} did not load its models in {timeout:g}s")
        if self._error:
            raise ComputeError(f"{self.process.name} failed to start: {self._error}")
        return self.build, self.embedder

    @property
    def queued(self) -> int:
        return len(self._pending)

    def submit(self, message: tuple[Any, ...], payload: Any = None) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if not self.alive:
                future.set_exception(ComputeError(f"{self.process.name} has exited"))
                return future
            self._pending[message[1]] = (loop, future)
        self._outbox.put((message, payload))
        return future

    def post(self, message: tuple[Any, ...]) -> None:
        """A message that gets no answer."""
        self._outbox.put((message, None))

    def stop(self, timeout: float) -> None:
        self._outbox.put((("stop", 0, 0), None))
        self._outbox.put(None)
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)

    def _send_loop(self) -> None:
        while (item := self._outbox.get()) is not None:
            message, payload = item
            try:
                self.conn.send(message)
                if payload is not None:
                    self.conn.send_bytes(payload)
            except (OSError, ValueError):
                return  # the receiver sees the process go and fails what is pending

    def _receive_loop(self) -> None:
        while True:
            try:
                kind, request, value = self.conn.recv()
            except (EOFError, OSError):
                break
            if kind == "ready":
                self.build, self.embedder = value
                self._ready.set()
                continue
            if kind == "failed":
                self._error = value
                self._ready.set()
                continue
            with self._lock:
                waiter = self._pending.pop(request, None)
            if waiter is not None:
                _resolve(waiter, kind, value)
        with self._lock:
            self.alive = False
            pending, self._pending = self._pending, {}
        self._error = self._error or "exited"
        self._ready.set()
        for waiter in pending.values():
            _resolve(waiter, "error", f"{self.process.name} exited")


def _resolve(
    waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]], kind: str, value: Any
) -> None:
    loop, future = waiter

    def settle() -> None:
        if future.done():
            return
        if kind == "error":
            future.set_exception(ComputeError(str(value)))
        else:
            future.set_result(None if kind == "dropped" else value)

    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
        loop.call_soon_threadsafe(settle)


class ProcessCompute:
    """``processes`` compute processes; cameras are spread over them, fewest first."""

    def __init__(self, spec: ComputeSpec, processes: int | None = None) -> None:
        self.spec = spec
        self.processes = processes or available_cores()
        # spawn: forking a process that already runs threads (capture, asyncio) is unsafe.
        self._context = multiprocessing.get_context("spawn")
        self._children: list[_Process] = []
        self._ids = itertools.count(1)
        # Request ids are unique per pool: a process serves several cameras.
        self.requests = itertools.count(1)
        self._lock = threading.Lock()
        self.build = ""
        self.embedder = ""

    @property
    def description(self) -> str:
        return (
            f"{self.spec.detector} detector, {self.processes} processes, {self.build}, "
            f"embeddings: {self.embedder}"
        )

    def start(self, timeout: float = 60.0) -> None:
        """Start every process and wait until each has loaded its models (blocking)."""
        with _child_environment():
            self._children = [self._spawn(i) for i in range(self.processes)]
        ready = [child.wait_ready(timeout) for child in self._children]
        # One of each unless a process fell back to dlib's descriptor (it logged why).
        self.build = ", ".join(sorted({build for build, _ in ready}))
        self.embedder = ", ".join(sorted({embedder for _, embedder in ready}))

    def _spawn(self, index: int) -> _Process:
        return _Process(self._context, self.spec, index)

    def camera(self) -> CameraCompute:
        if not self._children:
            raise RuntimeError("ProcessCompute.start() first")
        with self._lock:
            index = min(range(len(self._children)), key=lambda i: self._children[i].cameras)
            self._children[index].cameras += 1
        return _ProcessCamera(self, index, next(self._ids))

    def child(self, index: int) -> _Process:
        """The camera's process, started again if it died (its cameras start afresh)."""
        with self._lock:
            child = self._children[index]
            if not child.alive:
                log.warning("face process %s exited; starting another", child.process.name)
                with _child_environment():
                    replacement = self._spawn(index)
                replacement.cameras = child.cameras
                self._children[index] = child = replacement
        return child

    def least_busy(self) -> int:
        """The process with the fewest requests waiting."""
        return min(range(len(self._children)), key=lambda i: self._children[i].queued)

    def release(self, index: int) -> None:
        with self._lock:
            self._children[index].cameras -= 1

    def stop(self, timeout: float = 5.0) -> None:
        for child in self._children:
            child.stop(timeout)


class _ProcessCamera:
    def __init__(self, pool: ProcessCompute, index: int, camera: int) -> None:
        self._pool = pool
        self._index = index
        self._camera = camera
        self._closed = False

    async def find(
        self, image_bgr: Image, hints: Sequence[Box], deadline: float
    ) -> FrameFaces | None:
        frame = np.ascontiguousarray(image_bgr)
        message = (
            "find",
            next(self._pool.requests),
            self._camera,
            frame.shape,
            list(hints),
            deadline,
        )
        result: FrameFaces | None = await self._pool.child(self._index).submit(
            message, frame.reshape(-1).data
        )
        return result

    async def embed(self, image_bgr: Image, boxes: Sequence[Box]) -> npt.NDArray[np.float32]:
        from facefleet.face.embedder import face_crop

        crops = [face_crop(image_bgr, box) for box in boxes]
        message = ("embed", next(self._pool.requests), self._camera, crops)
        child = self._pool.child(self._pool.least_busy())
        result: npt.NDArray[np.float32] = await child.submit(message)
        return result

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.child(self._index).post(("close", 0, self._camera))
            self._pool.release(self._index)


class ThreadCompute:
    """The same work in a bounded pool of this process's threads."""

    def __init__(self, spec: ComputeSpec, threads: int | None = None) -> None:
        self.spec = spec
        self.threads = threads or available_cores()
        self._work = _Work(spec)
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="facefleet-face")
        self._ids = itertools.count(1)

    @property
    def build(self) -> str:
        from facefleet.face.build import dlib_build

        return str(dlib_build())

    @property
    def embedder(self) -> str:
        return self._work.embedder.description

    @property
    def description(self) -> str:
        return (
            f"{self.spec.detector} detector, {self.threads} threads, {self.build}, "
            f"embeddings: {self.embedder}"
        )

    def camera(self) -> CameraCompute:
        return _ThreadCamera(self, next(self._ids))

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def stop(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _ThreadCamera:
    def __init__(self, pool: ThreadCompute, camera: int) -> None:
        self._pool = pool
        self._camera = camera

    async def find(
        self, image_bgr: Image, hints: Sequence[Box], deadline: float
    ) -> FrameFaces | None:
        work = self._pool._work

        def run() -> FrameFaces | None:
            if time.monotonic() > deadline:
                return None
            return work.find(self._camera, image_bgr, hints)

        result: FrameFaces | None = await self._pool.run(run)
        return result

    async def embed(self, image_bgr: Image, boxes: Sequence[Box]) -> npt.NDArray[np.float32]:
        result: npt.NDArray[np.float32] = await self._pool.run(
            self._pool._work.embedder.embed, image_bgr, boxes
        )
        return result

    def close(self) -> None:
        self._pool._work.close(self._camera)


class FaceAnalyzer(Protocol):
    """What AnalyzerCompute needs of facefleet.face.engine.FaceEngine."""

    def analyze(self, frame_rgb: npt.NDArray[np.uint8]) -> list[Face]: ...


class AnalyzerCompute:
    """Every face of every frame found and embedded by one ``analyze()`` call, in a thread."""

    def __init__(self, analyzer: FaceAnalyzer) -> None:
        self.analyzer = analyzer

    @property
    def build(self) -> str:
        return ""  # whatever the analyzer runs on

    @property
    def embedder(self) -> str:
        return ""

    @property
    def description(self) -> str:
        return f"{type(self.analyzer).__name__} on every frame"

    def camera(self) -> CameraCompute:
        return _AnalyzerCamera(self.analyzer)


class _AnalyzerCamera:
    def __init__(self, analyzer: FaceAnalyzer) -> None:
        self._analyzer = analyzer
        self._faces: list[Face] = []

    async def find(
        self, image_bgr: Image, hints: Sequence[Box], deadline: float
    ) -> FrameFaces | None:
        import cv2

        def run() -> tuple[list[Face], float] | None:
            if time.monotonic() > deadline:
                return None
            started = time.thread_time()
            rgb = np.asarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            return self._analyzer.analyze(rgb), (time.thread_time() - started) * 1000

        result = await asyncio.to_thread(run)
        if result is None:
            return None
        self._faces, cpu_ms = result
        return FrameFaces(
            detections=[Detection(f.box, f.score) for f in self._faces],
            sharpness=[f.sharpness for f in self._faces],
            regions=1,
            pixels=image_bgr.shape[0] * image_bgr.shape[1],
            motion=True,
            cut=False,
            cpu_ms=cpu_ms,
        )

    async def embed(self, image_bgr: Image, boxes: Sequence[Box]) -> npt.NDArray[np.float32]:
        by_box = {face.box: face.embedding for face in self._faces}
        return np.stack([by_box[box] for box in boxes]) if boxes else np.empty((0, 128), np.float32)

    def close(self) -> None:
        self._faces = []


__all__ = [
    "AnalyzerCompute",
    "CameraCompute",
    "ComputeError",
    "ComputeSpec",
    "FaceAnalyzer",
    "FaceCompute",
    "FrameFaces",
    "ProcessCompute",
    "ThreadCompute",
    "available_cores",
]

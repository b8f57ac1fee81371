"""The worker's face compute pool: real processes, real models, real fixture faces."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from facefleet.face.build import dlib_build
from facefleet.face.detectors import yunet_available
from facefleet.face.engine import Box, FaceEngine
from facefleet.face.finder import FinderConfig
from facefleet.face.images import load_image_rgb
from facefleet.worker.config import CAMERAS_PER_CORE, WorkerSettings
from facefleet.worker.local_store import LocalStore
from facefleet.worker.pipeline.compute import (
    ComputeError,
    ComputeSpec,
    ProcessCompute,
    ThreadCompute,
    available_cores,
)
from facefleet.worker.pipeline.face_pipeline import FacePipeline, detector_name, load_engine
from facefleet.worker.pipeline.reporter import SightingOutbox
from facefleet.worker.worker_client import Assignment, WorkerClient
from tests.fixtures.face_data import require_fixtures

Image = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def photo() -> Image:
    path = require_fixtures() / "faces" / "probe" / "two_people.jpg"
    rgb = load_image_rgb(path.read_bytes())
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessCompute]:
    compute = ProcessCompute(ComputeSpec(), processes=1)
    compute.start()
    yield compute
    compute.stop()


def later() -> float:
    return time.monotonic() + 30


async def test_cameras_sharing_a_process_get_their_own_answers(
    pool: ProcessCompute, photo: Image
) -> None:
    faces, empty = pool.camera(), pool.camera()
    blank = np.zeros_like(photo)
    hints: list[Box] = []
    for _ in range(3):
        a, b = await asyncio.gather(
            faces.find(photo, hints, later()), empty.find(blank, [], later())
        )
        assert a is not None and b is not None
        assert len(a.detections) == 2 and b.detections == []
        hints = [d.box for d in a.detections]  # a still picture: found where it was tracked
    faces.close()
    empty.close()


async def test_the_same_faces_and_embeddings_as_the_engine(
    pool: ProcessCompute, photo: Image
) -> None:
    camera = pool.camera()
    found = await camera.find(photo, [], later())
    assert found is not None and found.motion and found.cpu_ms > 0
    boxes = [d.box for d in found.detections]
    embeddings = await camera.embed(photo, boxes)
    rgb = np.ascontiguousarray(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    reference = FaceEngine().embed(rgb, boxes)
    assert embeddings.shape == (2, 128)
    assert np.linalg.norm(embeddings - reference, axis=1).max() < 0.02
    threads = ThreadCompute(ComputeSpec(), threads=1)
    local = threads.camera()
    again = await local.find(photo, [], later())
    assert again is not None and [d.box for d in again.detections] == boxes
    assert np.allclose(await local.embed(photo, boxes), embeddings, atol=1e-5)
    threads.stop()
    camera.close()


async def test_a_frame_past_its_deadline_is_dropped_unprocessed(
    pool: ProcessCompute, photo: Image
) -> None:
    camera = pool.camera()
    assert await camera.find(photo, [], time.monotonic() - 0.1) is None
    assert await camera.find(photo, [], later()) is not None
    camera.close()


async def test_a_dead_process_fails_its_requests_and_is_replaced(photo: Image) -> None:
    # No pixel budget: a large frame keeps the process busy for seconds.
    spec = ComputeSpec(finder=FinderConfig(pixel_budget=100_000_000))
    compute = ProcessCompute(spec, processes=1)
    await asyncio.to_thread(compute.start)
    try:
        camera = compute.camera()
        busy = asyncio.ensure_future(camera.find(np.tile(photo, (4, 4, 1)), [], later()))
        await asyncio.sleep(0.3)
        first = compute._children[0].process
        os.kill(first.pid, signal.SIGKILL)
        with pytest.raises(ComputeError, match="exited"):
            await busy
        # The next request starts another process; the camera carries on.
        found = await camera.find(photo, [], later())
        assert found is not None and len(found.detections) == 2
        assert compute._children[0].process.pid != first.pid
    finally:
        compute.stop()


async def test_the_worker_says_which_dlib_and_embedder_it_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="facefleet.worker")
    settings = WorkerSettings(face_processes=0)
    compute = await load_engine(settings)
    assert str(dlib_build()) in compute.description
    assert compute.embedder.startswith("numpy ResNet (numpy ")
    assert f"embeddings: {compute.embedder}" in compute.description
    detector = detector_name(settings)
    assert detector == ("yunet-hog" if yunet_available() else "hog")
    assert f"face pipeline: {detector} detector, {available_cores()} threads" in caplog.text
    # And every camera's metrics say it, in the heartbeat.
    client = cast(WorkerClient, SimpleNamespace(get_gallery=None))
    assignment = Assignment(
        camera_id=1,
        name="door",
        source_url="file:///nowhere.mp4",
        target_fps=5,
        epoch=1,
        lease_ttl=6,
    )
    outbox = SightingOutbox(LocalStore(":memory:"), client)
    runner = FacePipeline(client, compute, outbox).runner(assignment)
    assert runner.metrics()["dlib_build"] == str(dlib_build())
    assert runner.metrics()["embedder"] == compute.embedder
    assert str(dlib_build()) in caplog.text
    assert compute.embedder in caplog.text


async def test_each_process_reports_its_embedder() -> None:
    numpy_pool = ProcessCompute(ComputeSpec(), processes=1)
    dlib_pool = ProcessCompute(ComputeSpec(embedder="dlib"), processes=1)
    await asyncio.gather(asyncio.to_thread(numpy_pool.start), asyncio.to_thread(dlib_pool.start))
    try:
        # The processes start with OPENBLAS_NUM_THREADS=1 (unless set): one BLAS thread.
        threads = os.environ.get("OPENBLAS_NUM_THREADS", "1")
        assert numpy_pool.embedder.startswith("numpy ResNet (")
        assert numpy_pool.embedder.endswith(f", {threads} thread{'s' * (threads != '1')})")
        assert dlib_pool.embedder == f"dlib ResNet ({dlib_build()})"
        assert "embeddings: dlib ResNet" in dlib_pool.description
    finally:
        numpy_pool.stop()
        dlib_pool.stop()


def test_capacity_follows_the_cores() -> None:
    assert WorkerSettings().capacity == min(64, CAMERAS_PER_CORE * available_cores())
    assert WorkerSettings(capacity=3).capacity == 3

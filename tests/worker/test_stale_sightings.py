"""Sightings against the real control plane: accepted at the lease's epoch, refused after it,
and a refused worker stops that stream at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from facefleet.demo.video import make_demo_video
from facefleet.face.engine import Box, Face
from facefleet.worker.agent import WorkerAgent
from facefleet.worker.local_store import LocalStore
from facefleet.worker.pipeline.face_pipeline import FacePipeline
from facefleet.worker.pipeline.face_processor import FaceProcessor, FaceProcessorConfig
from facefleet.worker.pipeline.reporter import SightingOutbox
from facefleet.worker.pipeline.tracker import TrackerConfig
from facefleet.worker.worker_client import Sighting, StaleEpoch
from tests.fixtures.loopback import ControlPlane
from tests.fixtures.waiting import until


def sighting(track_id: str, person_id: int | None = None) -> Sighting:
    return Sighting(
        track_id=track_id,
        person_id=person_id,
        first_seen=1_700_000_000.0,
        last_seen=1_700_000_002.0,
        best_distance=None,
        frames=4,
    )


async def test_sightings_at_the_leases_epoch_only(cp: ControlPlane) -> None:
    camera_id = await cp.add_camera()
    async with cp.client() as worker:
        await worker.register()
        got = await worker.request_camera()
        assert got.assignment is not None
        epoch = got.assignment.epoch
        assert got.assignment.match_threshold == pytest.approx(0.6)

        first = await worker.report_sightings(camera_id, epoch, [sighting("t-1")])
        again = await worker.report_sightings(camera_id, epoch, [sighting("t-1"), sighting("t-2")])
        assert first.accepted == 1 and again.accepted == 2
        assert again.ids[0] == first.ids[0]  # the same track updates its sighting

        with pytest.raises(StaleEpoch) as caught:
            await worker.report_sightings(camera_id, epoch + 1, [sighting("t-3")])
        assert caught.value.status == 409
        await worker.release_camera(camera_id, epoch)
        with pytest.raises(StaleEpoch):
            await worker.report_sightings(camera_id, epoch, [sighting("t-1")])

    listed = (await cp.admin.get("/v1/sightings", params={"camera_id": camera_id})).json()
    assert sorted(item["track_id"] for item in listed["items"]) == ["t-1", "t-2"]
    assert all(item["known"] is False for item in listed["items"])


class OneFaceEverywhere:
    """A detector that sees the same face in every frame."""

    def __init__(self) -> None:
        vector = np.random.default_rng(0).normal(size=128)
        self.embedding = (vector / np.linalg.norm(vector)).astype(np.float32)

    def analyze(self, frame_rgb: np.typing.NDArray[np.uint8]) -> list[Face]:
        box = Box(10, 10, 70, 70)
        return [Face(box=box, embedding=self.embedding, score=1.0, sharpness=100.0, size=60)]


async def test_a_worker_whose_camera_moved_on_stops_streaming_it(
    cp: ControlPlane, tmp_path: Path
) -> None:
    video = make_demo_video(tmp_path / "cam.avi", seconds=2, fps=15, size=(160, 120))
    resp = await cp.admin.post(
        "/v1/cameras", json={"name": "door", "source_url": f"file://{video}", "target_fps": 10}
    )
    assert resp.status_code == 201, resp.text
    camera_id = resp.json()["id"]
    async with cp.client("old") as old_client, cp.client("new") as new_client:
        # Open tracks are reported every half second, so posts keep coming.
        config = FaceProcessorConfig(tracker=TrackerConfig(update_every=0.5), send_crops=False)
        store = LocalStore(":memory:")
        outbox = SightingOutbox(store, old_client)
        pipeline = FacePipeline(old_client, OneFaceEverywhere(), outbox, config)
        agent = WorkerAgent(old_client, pipeline.runner, store=store)
        outbox.on_stale = agent.stop_stale_stream
        sending = asyncio.create_task(outbox.run())
        await agent.register()
        got = await old_client.request_camera()
        assert got.assignment is not None and got.assignment.camera_id == camera_id
        # What the agent's loops do with an answer, without them running.
        agent._learn(got.generation, got.assignment)
        await agent.reconcile()
        processor = agent.streams[camera_id].runner.processor
        assert isinstance(processor, FaceProcessor)
        await until(lambda: processor.metrics()["sightings_reported"] != 0, 15, "a sighting")

        # The old worker goes silent past its lease (its heartbeat loop is not running here)
        # and the camera moves to another worker at a new epoch.
        await cp.expire_leases()
        await new_client.register()
        moved = await new_client.request_camera()
        assert moved.assignment is not None and moved.assignment.epoch == got.assignment.epoch + 1

        await until(lambda: camera_id not in agent.streams, 15, "the old stream to stop")
        assert str(processor.metrics()["last_report_error"]).startswith("409 StaleEpoch")
        await agent.reconcile()  # the refused epoch is never taken up again
        await asyncio.sleep(0.2)
        assert agent.streams == {}
        sending.cancel()

    listed = (await cp.admin.get("/v1/sightings", params={"camera_id": camera_id})).json()
    assert listed["total"] >= 1
    assert {item["epoch"] for item in listed["items"]} == {got.assignment.epoch}

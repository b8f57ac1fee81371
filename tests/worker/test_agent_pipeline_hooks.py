"""The agent's hooks for the face pipeline: gallery versions from heartbeats reach each
stream's processor, and a stale epoch stops that stream (and only at that epoch)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from facefleet.worker.agent import Stream, WorkerAgent
from facefleet.worker.pipeline.processor import CameraRunner, MetricValue
from facefleet.worker.pipeline.source import Frame, FrameSource
from facefleet.worker.worker_client import Assignment, HeartbeatResult, WorkerClient
from tests.fixtures.waiting import until


class VersionRecorder:
    def __init__(self) -> None:
        self.versions: list[int] = []

    async def process(self, frame: Frame) -> None:
        pass

    def metrics(self) -> dict[str, MetricValue]:
        return {}

    def on_gallery_version(self, version: int) -> None:
        self.versions.append(version)


def assignment(camera_id: int, epoch: int) -> Assignment:
    return Assignment(
        camera_id=camera_id,
        name=f"cam-{camera_id}",
        source_url="file:///nowhere.mp4",
        target_fps=5,
        epoch=epoch,
        lease_ttl=6,
    )


def heartbeat(leases: list[tuple[int, int]], **extra: Any) -> HeartbeatResult:
    return HeartbeatResult.model_validate(
        {
            "status": "online",
            "desired_state": "run",
            "leases": [
                {"camera_id": c, "epoch": e, "valid": True, "expires_in": 6.0} for c, e in leases
            ],
            "heartbeat_interval": 2.0,
            "lease_ttl": 6.0,
            "server_time": 1.0,
            **extra,
        }
    )


@pytest.fixture
async def agent() -> AsyncIterator[WorkerAgent]:
    # Never contacted: these hooks make no API call.
    async with WorkerClient("http://127.0.0.1:9", "key", "w1") as client:
        yield WorkerAgent(
            client, lambda a: CameraRunner(FrameSource(a.source_url), VersionRecorder(), 5)
        )


async def add_stream(agent: WorkerAgent, camera_id: int, epoch: int) -> VersionRecorder:
    processor = VersionRecorder()
    runner = CameraRunner(FrameSource("file:///nowhere.mp4"), processor, 5)
    task = asyncio.create_task(asyncio.sleep(3600))
    agent.streams[camera_id] = Stream(assignment(camera_id, epoch), runner, task)
    return processor


async def test_heartbeat_gallery_versions_reach_every_processor(agent: WorkerAgent) -> None:
    first, second = await add_stream(agent, 1, 1), await add_stream(agent, 2, 4)
    await agent._obey(heartbeat([(1, 1), (2, 4)], gallery_version=7))
    await agent._obey(heartbeat([(1, 1), (2, 4)]))  # an older server: no version
    assert first.versions == second.versions == [7]


async def test_a_stale_epoch_stops_that_stream_only(agent: WorkerAgent) -> None:
    await add_stream(agent, 1, 2)
    await add_stream(agent, 2, 1)
    agent.stop_stale_stream(1, 1)  # an older epoch of camera 1: the stream is newer
    agent.stop_stale_stream(3, 1)  # not streamed at all
    await asyncio.sleep(0.05)
    assert sorted(agent.streams) == [1, 2]
    agent.stop_stale_stream(1, 2)
    await until(lambda: 1 not in agent.streams, 5, "camera 1 to stop")
    assert sorted(agent.streams) == [2]
    await agent.stop_stream(2, "test over")


async def test_a_heartbeat_sent_before_a_stream_started_does_not_revoke_it(
    agent: WorkerAgent,
) -> None:
    sent_at = time.monotonic()
    await add_stream(agent, 1, 1)  # the camera request answered while the heartbeat was out
    await agent._obey(heartbeat([]), sent_at)
    assert sorted(agent.streams) == [1]
    await agent._obey(heartbeat([]), time.monotonic())  # a later heartbeat is the truth
    assert agent.streams == {}

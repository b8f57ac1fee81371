"""The worker agent against the real control plane (uvicorn on loopback): it reconciles its
streams with its leases, gives back what it cannot stream, keeps heartbeating whatever its
commands do, and executes each command once however often it is handed out."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from facefleet.api.security import Role
from facefleet.demo.video import make_demo_video
from facefleet.worker.agent import WorkerAgent
from facefleet.worker.local_store import LocalStore
from facefleet.worker.pipeline.processor import CameraRunner, MetricValue
from facefleet.worker.pipeline.source import Frame, FrameSource
from facefleet.worker.supervisor import LoopFailed
from facefleet.worker.worker_client import (
    Assignment,
    ConnectionFailed,
    HeartbeatResult,
    WorkerClient,
)
from tests.fixtures.loopback import ControlPlane
from tests.fixtures.waiting import eventually, until


class Recorder:
    """A processor that counts frames, records gallery versions and can hang on reload."""

    def __init__(self, reload_hangs: bool = False) -> None:
        self.frames = 0
        self.versions: list[int] = []
        self.reloads = 0
        self.reload_hangs = reload_hangs

    async def process(self, frame: Frame) -> None:
        self.frames += 1

    def metrics(self) -> dict[str, MetricValue]:
        return {"frames_processed": self.frames}

    def on_gallery_version(self, version: int) -> None:
        self.versions.append(version)

    async def reload_gallery(self) -> None:
        self.reloads += 1
        if self.reload_hangs:
            await asyncio.sleep(3600)


class Factory:
    """The agent's runner factory: real sources, one Recorder per stream, every start seen."""

    def __init__(self, *, loop_files: bool = True, reload_hangs: bool = False) -> None:
        self.started: list[tuple[int, int]] = []
        self.processors: dict[int, Recorder] = {}
        self.loop_files = loop_files
        self.reload_hangs = reload_hangs

    def __call__(self, assignment: Assignment) -> CameraRunner:
        source = FrameSource(assignment.source_url, loop_files=self.loop_files)
        processor = Recorder(self.reload_hangs)
        self.started.append((assignment.camera_id, assignment.epoch))
        self.processors[assignment.camera_id] = processor
        return CameraRunner(source, processor, assignment.target_fps)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return make_demo_video(tmp_path / "cam.avi", seconds=1, fps=15, size=(160, 120))


async def add_camera(cp: ControlPlane, url: str, name: str = "door") -> int:
    resp = await cp.admin.post(
        "/v1/cameras", json={"name": name, "source_url": url, "target_fps": 10}
    )
    assert resp.status_code == 201, resp.text
    camera_id: int = resp.json()["id"]
    return camera_id


async def camera(cp: ControlPlane, camera_id: int) -> dict[str, Any]:
    body: dict[str, Any] = (await cp.admin.get(f"/v1/cameras/{camera_id}")).json()
    return body


@contextlib.asynccontextmanager
async def running(agent: WorkerAgent) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(agent.run())
    try:
        yield task
    finally:
        agent.stop()
        with contextlib.suppress(Exception):
            await task


async def heartbeats(cp: ControlPlane) -> float:
    """Heartbeats the control plane has answered, from its /metrics."""
    text = (await cp.admin.get("/metrics")).text
    line = next(row for row in text.splitlines() if row.startswith("facefleet_heartbeats_total"))
    return float(line.split()[-1])


def beat(generation: int, leases: list[tuple[int, int]], **extra: Any) -> HeartbeatResult:
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
            "generation": generation,
            **extra,
        }
    )


async def test_streams_follow_the_leases_and_gallery_versions_reach_them(
    cp: ControlPlane, video: Path
) -> None:
    camera_id = await add_camera(cp, f"file://{video}")
    factory = Factory()
    async with cp.client() as client, WorkerAgent(client, factory) as agent, running(agent):
        await until(lambda: camera_id in agent.streams, 10, "the camera to stream")
        await until(lambda: factory.processors[camera_id].frames > 2, 10, "frames")
        await until(lambda: factory.processors[camera_id].versions != [], 10, "a gallery version")
        # The operator disables the camera: the next heartbeat's newer lease list stops it.
        await cp.admin.patch(f"/v1/cameras/{camera_id}", json={"enabled": False})
        await until(lambda: agent.streams == {}, 10, "the stream to stop")
        assert factory.started == [(camera_id, 1)]


async def test_a_stream_that_ended_is_given_back_and_never_resumed_at_its_epoch(
    cp: ControlPlane, video: Path
) -> None:
    """A heartbeat answered before the release committed still lists the lease: it must not
    start the stream again (another worker may take the camera the moment it is free)."""
    camera_id = await add_camera(cp, f"file://{video}")
    factory = Factory(loop_files=False)
    async with cp.client() as client, WorkerAgent(client, factory) as agent:
        got = await client.request_camera()
        assert got.assignment is not None
        epoch = got.assignment.epoch
        agent._learn(got.generation, got.assignment)
        await agent.reconcile()
        stream = agent.streams[camera_id]
        await asyncio.wait_for(stream.task, 10)  # the file ends: the source stops by itself
        in_flight = beat(agent.book.applied, [(camera_id, epoch)])
        await agent.reconcile()  # gives the camera back
        assert camera_id not in agent.streams
        agent._heard(in_flight, time.monotonic())
        await agent.reconcile()
        await agent.reconcile()
        assert camera_id not in agent.streams
        assert factory.started == [(camera_id, epoch)]
        await until(lambda: not agent._tasks, 10, "the release")
    released = await camera(cp, camera_id)
    assert released["lease"]["worker_id"] is None and released["state"] == "unassigned"


async def test_a_camera_no_worker_can_open_is_given_back_failing(cp: ControlPlane) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connections are refused
    camera_id = await add_camera(cp, f"rtsp://127.0.0.1:{port}/nothing-here")
    factory = Factory()
    async with cp.client() as client:
        agent = WorkerAgent(client, factory, start_timeout=1.0)
        async with agent, running(agent) as task:
            await until(lambda: bool(factory.started), 10, "the stream to start")
            shown: dict[str, Any] = {}

            async def failing() -> bool:
                shown.update(await camera(cp, camera_id))
                return bool(shown["state"] == "failing")

            deadline = time.monotonic() + 15
            while not await failing():
                assert time.monotonic() < deadline, shown
                await asyncio.sleep(0.2)
            assert shown["lease"]["worker_id"] is None and shown["failures"] == 1
            assert shown["last_error"]
            # The worker lives on: it heartbeats, and its loops are all running.
            assert not task.done()
            worker = await cp.worker("w1")
            assert worker["status"] == "online"
            # The failing camera waits out its backoff: nobody takes it meanwhile.
            again = await client.request_camera()
            assert again.assignment is None


async def test_a_runner_that_cannot_be_built_gives_the_camera_back_failing(
    cp: ControlPlane, video: Path
) -> None:
    camera_id = await add_camera(cp, f"file://{video}")

    def refuse(assignment: Assignment) -> CameraRunner:
        raise ValueError(f"cannot open {assignment.name}")

    async def failing() -> dict[str, Any] | None:
        shown = await camera(cp, camera_id)
        return shown if shown["state"] == "failing" else None

    async with cp.client() as client, WorkerAgent(client, refuse) as agent, running(agent):
        # The outcome, not the short while the worker lists the lease as given up: the
        # next heartbeat settles that list, and a loaded machine can miss the window.
        shown = await eventually(failing, 20, "the camera to be given back failing")
        await until(lambda: not agent._tasks, 10, "the release")
        assert not agent.book.desired() and camera_id not in agent.streams
    assert "cannot open door" in shown["last_error"] and shown["lease"]["worker_id"] is None


async def test_heartbeats_go_on_while_a_command_hangs(cp: ControlPlane, video: Path) -> None:
    camera_id = await add_camera(cp, f"file://{video}")
    factory = Factory(reload_hangs=True)
    async with cp.client() as client, WorkerAgent(client, factory) as agent, running(agent):
        await until(lambda: camera_id in agent.streams, 10, "the camera to stream")
        sent = await cp.admin.post("/v1/workers/w1/commands", json={"type": "reload_gallery"})
        assert sent.status_code == 201
        await until(lambda: factory.processors[camera_id].reloads == 1, 10, "the command")
        first = await heartbeats(cp)
        # Three heartbeat intervals later the worker has heartbeated, and is not fenced.
        await asyncio.sleep(agent.state.heartbeat_interval * 3)
        assert await heartbeats(cp) >= first + 2
        assert not agent.state.fenced and camera_id in agent.streams


class LosingAcks(WorkerClient):
    """A client whose first acknowledgement never reaches the control plane."""

    lost = 0

    async def ack_command(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if not self.lost:
            self.lost += 1
            raise ConnectionFailed("the acknowledgement was lost")
        return await super().ack_command(*args, **kwargs)


async def test_a_command_handed_out_again_is_executed_once(
    cp: ControlPlane, video: Path, tmp_path: Path
) -> None:
    camera_id = await add_camera(cp, f"file://{video}")
    factory = Factory()
    store = LocalStore(tmp_path / "agent.sqlite3")
    client = LosingAcks(cp.url, cp.tenant.keys[Role.worker], "w1", timeout=5.0)
    async with client, WorkerAgent(client, factory, store=store) as agent, running(agent):
        await until(lambda: camera_id in agent.streams, 10, "the camera to stream")
        sent = await cp.admin.post("/v1/workers/w1/commands", json={"type": "reload_gallery"})
        command_id = sent.json()["id"]

        async def acked() -> bool:
            got = await cp.admin.get(f"/v1/workers/w1/commands/{command_id}")
            return bool(got.json()["status"] == "acked")

        deadline = time.monotonic() + 15
        while not await acked():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        # The worker notes the acknowledgement once the control plane's answer is back,
        # a moment after the control plane shows it.
        await until(lambda: _locally_acked(store, command_id), 10, "the local acknowledgement")
    assert client.lost == 1
    assert factory.processors[camera_id].reloads == 1  # handed out twice, executed once


def _locally_acked(store: LocalStore, command_id: int) -> bool:
    record = store.command(command_id)
    return record is not None and record.acked


async def test_a_loop_that_keeps_failing_ends_the_worker(cp: ControlPlane) -> None:
    async def broken() -> None:
        raise RuntimeError("broken service")

    async with cp.client() as client:
        agent = WorkerAgent(client, Factory(), services={"broken": broken})
        async with agent:
            with pytest.raises(LoopFailed, match="broken"):
                await asyncio.wait_for(agent.run(), 60)

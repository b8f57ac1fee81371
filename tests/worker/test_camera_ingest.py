"""Real camera protocols end to end: the fixture video served by a real RTSP server
(GStreamer's, from Debian's packages) and as an HTTP MJPEG stream (ffmpeg's own server). A
real worker recognizes Lin-Manuel Miranda from each; the server is then killed mid-stream
and started again on the same address, and the same worker process picks the stream up
again by itself and recognizes him again."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.fixtures.face_data import require_fixtures
from tests.fixtures.fleet import ControlPlane, WorkerProcess
from tests.fixtures.live_server import free_port
from tests.fixtures.waiting import wait_for

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has python3-gi
PERSON = "lin_manuel_miranda"
Server = Callable[[], subprocess.Popen[bytes]]


def require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is missing: .ci/run installs it (apt-get)")


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    # Looked up, not connected to: ffmpeg's server takes one client, which a probe would be.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the camera server exited"
        if any(
            c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
            for c in psutil.Process(process.pid).net_connections("tcp")
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def rtsp_server(port: int, video: Path) -> Server:
    script = Path(__file__).with_name("rtsp_camera.py")

    def start() -> subprocess.Popen[bytes]:
        require(SYSTEM_PYTHON)
        process = subprocess.Popen(
            [SYSTEM_PYTHON, str(script), str(port), str(video)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        wait_listening(port, process)
        return process

    return start


def mjpeg_server(port: int, video: Path) -> Server:
    def start() -> subprocess.Popen[bytes]:
        require("ffmpeg")
        # -re: at the video's own rate, looped, as a camera; -listen 1: ffmpeg's HTTP server.
        command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1"]
        command += ["-i", str(video), "-f", "mpjpeg", "-q:v", "5", "-listen", "1"]
        command += [f"http://127.0.0.1:{port}/cam.mjpg"]
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_listening(port, process)
        return process

    return start


@pytest.fixture
def control(tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}")
    plane.start()
    yield plane
    plane.stop()


def sightings_of(admin: httpx.Client, camera_id: int, person_id: int) -> list[dict[str, Any]]:
    resp = admin.get("/v1/sightings", params={"camera_id": camera_id, "limit": 1000})
    resp.raise_for_status()
    return [s for s in resp.json()["items"] if s["person_id"] == person_id]


def camera_metrics(admin: httpx.Client, worker_id: str, camera_id: int) -> dict[str, Any]:
    items = admin.get("/v1/workers", params={"limit": 1000}).json()["items"]
    metrics = next((w["metrics"] for w in items if w["worker_id"] == worker_id), None) or {}
    found: dict[str, Any] = metrics.get(f"camera_{camera_id}") or {}
    return found


def kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(5)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def recognize_through_a_restart(
    control: ControlPlane, tmp_path: Path, url: str, start_server: Server
) -> None:
    photo = require_fixtures() / "faces" / "enroll" / f"{PERSON}.png"
    with control.admin() as admin:
        person_id = admin.post("/v1/people", json={"name": PERSON}).json()["id"]
        added = admin.post(
            f"/v1/people/{person_id}/faces",
            files={"files": (photo.name, photo.read_bytes(), "image/png")},
        )
        assert added.status_code == 201, added.text
        created = admin.post(
            "/v1/cameras", json={"name": "door", "source_url": url, "target_fps": 5}
        )
        assert created.status_code == 201, created.text
        camera_id: int = created.json()["id"]

        server = start_server()
        worker = WorkerProcess(
            "ingest", control, tmp_path, env={"FACEFLEET_WORKER_FACE_PROCESSES": "1"}
        ).start()
        try:
            wait_for(
                lambda: sightings_of(admin, camera_id, person_id), 60, "a sighting", interval=0.5
            )
            streaming = wait_for(
                lambda: (
                    camera_metrics(admin, "ingest", camera_id).get("stream_state") == "streaming"
                ),
                10,
                "the stream's metrics",
                interval=0.5,
            )
            assert streaming
            before = camera_metrics(admin, "ingest", camera_id)

            kill(server)  # mid-stream: the camera is gone, its socket closed
            wait_for(
                lambda: (
                    camera_metrics(admin, "ingest", camera_id).get("stream_state")
                    in ("reconnecting", "stalled")
                ),
                15,
                "the worker to notice the camera is gone",
                interval=0.25,
            )
            time.sleep(1.0)
            restarted_at = time.time()
            server = start_server()

            def back() -> dict[str, Any] | None:
                m = camera_metrics(admin, "ingest", camera_id)
                reconnected = int(m.get("reconnects", 0)) > int(before["reconnects"])
                flowing = int(m.get("frames_read", 0)) > int(before["frames_read"]) + 25
                return m if reconnected and flowing and m["stream_state"] == "streaming" else None

            after = wait_for(back, 30, "the stream to come back", interval=0.5)

            def seen_again() -> list[dict[str, Any]] | None:
                return [
                    s
                    for s in sightings_of(admin, camera_id, person_id)
                    if datetime.fromisoformat(s["first_seen"]).timestamp() > restarted_at
                ] or None

            wait_for(seen_again, 40, "a sighting after the restart", interval=0.5)
            assert worker.alive, "the same worker process carried on"
            worker.signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        finally:
            worker.stop()
            kill(server)
    log = worker.log()
    assert "Traceback" not in log, log[-3000:]
    print(f"\nreconnects {before['reconnects']} -> {after['reconnects']}")


@pytest.fixture
def video() -> Path:
    path = require_fixtures() / "video" / "two_people_clip.mp4"
    assert path.is_file(), path
    return path


def test_rtsp_camera_recognized_across_a_server_restart(
    control: ControlPlane, tmp_path: Path, video: Path
) -> None:
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/cam"
    recognize_through_a_restart(control, tmp_path, url, rtsp_server(port, video))


def test_mjpeg_camera_recognized_across_a_server_restart(
    control: ControlPlane, tmp_path: Path, video: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/cam.mjpg"
    recognize_through_a_restart(control, tmp_path, url, mjpeg_server(port, video))

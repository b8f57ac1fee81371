"""The fleet scenario with every log kept: a real control plane and real workers streaming,
commanded, killed and restarted under the same WORKER_ID, watched live and stopped. Every
key, session token and camera secret it made is then looked for in every log: none is
there."""

from __future__ import annotations

import hashlib
import re
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from facefleet.demo.video import make_demo_video
from tests.fixtures.fleet import ControlPlane, WorkerProcess, streaming_cameras, worker_status
from tests.fixtures.harness import ENCRYPTION_KEYS
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.timeout(240)

CAMERA_SECRETS = ("Kq4fileToken", "Kq4filePass", "Kq4rtspPass", "Kq4rtspToken")
# Session tokens are 43 characters of URL-safe base64 (32 random bytes).
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


@pytest.fixture
def control(tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}")
    plane.start()
    yield plane
    plane.stop()


def session_hashes(control: ControlPlane) -> set[str]:
    """The hashes of the sessions the control plane holds (it never keeps a token)."""
    with sqlite3.connect(control.workdir / "facefleet.db") as db:
        return {row[0] for row in db.execute("SELECT session_hash FROM workers")}


def test_no_secret_of_the_fleet_reaches_any_log(control: ControlPlane, tmp_path: Path) -> None:
    video = make_demo_video(tmp_path / "demo.avi", seconds=4, fps=15)
    keys = control.keys()
    hashes: set[str] = set()
    workers: list[WorkerProcess] = []
    try:
        with control.admin() as admin:
            for name, url in (
                ("lobby", f"file://{video}?token={CAMERA_SECRETS[0]}#password={CAMERA_SECRETS[1]}"),
                # Nothing listens there: the worker that takes it fails to open it, and says so.
                (
                    "door",
                    f"rtsp://admin:{CAMERA_SECRETS[2]}@127.0.0.1:9/live?sig={CAMERA_SECRETS[3]}",
                ),
            ):
                resp = admin.post(
                    "/v1/cameras", json={"name": name, "source_url": url, "target_fps": 5}
                )
                assert resp.status_code == 201, resp.text
            lobby = admin.get("/v1/cameras").json()["items"][0]["id"]
            workers = [
                WorkerProcess(worker_id, control, tmp_path).start() for worker_id in ("w1", "w2")
            ]
            wait_for(
                lambda: any(streaming_cameras(admin, w.worker_id) == {lobby} for w in workers),
                60,
                "the lobby camera to stream",
            )
            tenant = admin.get("/v1/whoami").json()["tenant_id"]
            ws = f"ws://127.0.0.1:{control.port}/v1/workers/ws/{tenant}"
            with connect(
                ws, additional_headers={"Authorization": f"Bearer {keys['viewer']}"}
            ) as live:
                assert '"snapshot"' in str(live.recv(timeout=10))
            sent = admin.post("/v1/workers/w1/commands", json={"type": "reload_gallery"})
            assert sent.status_code == 201, sent.text
            hashes |= session_hashes(control)

            # Killed, then started again with the same WORKER_ID and state directory.
            workers[0].signal(signal.SIGKILL)
            workers[0].wait(10)
            workers[0].start()
            wait_for(lambda: workers[0].log().count("registered as w1") >= 2, 60, "w1 to come back")
            wait_for(lambda: worker_status(admin, "w1") == "online", 30, "w1 online again")
            hashes |= session_hashes(control)
        for worker in workers:
            worker.signal(signal.SIGTERM)
            assert worker.wait(20) == 0
    finally:
        for worker in workers:
            worker.stop()
        control.stop()

    logs = {"control plane": control.log(), **{w.worker_id: w.log() for w in workers}}
    assert "streaming camera" in "".join(logs.values())
    assert logs["w1"].count("registered as w1") == 2
    for where, text in logs.items():
        for name, key in keys.items():
            assert key not in text, f"the {name} key is in the {where} log"
        for secret in CAMERA_SECRETS:
            assert secret not in text, f"camera secret {secret} is in the {where} log"
        for candidate in TOKEN_SHAPE.findall(text):
            digest = hashlib.sha256(candidate.encode()).hexdigest()
            assert digest not in hashes, f"a session token is in the {where} log"
        assert ENCRYPTION_KEYS not in text, f"the encryption key is in the {where} log"
    # Nor is any camera secret in the database's files: source URLs are encrypted at rest.
    stored = b"".join(path.read_bytes() for path in control.workdir.glob("facefleet.db*"))
    assert stored
    for secret in CAMERA_SECRETS:
        assert secret.encode() not in stored, f"camera secret {secret} is in the database"

"""``facefleet demo`` (``make run``): the control plane, demo cameras that need no network,
and two workers, as child processes; Ctrl-C stops the workers cleanly, then the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console

from facefleet.api.config import Settings
from facefleet.demo.faces import DEMO_PERSON, make_face_video, portrait_path
from facefleet.demo.video import make_demo_video

console = Console()
DEMO_WORKERS = ("demo-worker-1", "demo-worker-2")
DEMO_CAMERAS = (("demo-lobby", "lobby"), ("demo-gate", "gate"))
FACE_CAMERA = "demo-face"


def _wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the control plane exited with code {server.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the control plane did not become healthy")


def _seed_cameras(url: str, admin_key: str, data_dir: Path) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    listed = httpx.get(f"{url}/v1/cameras", headers=headers).json()["items"]
    existing = {c["name"] for c in listed}
    videos = {
        name: make_demo_video(data_dir / "demo" / f"{name}.avi", label=f"facefleet {label}")
        for name, label in DEMO_CAMERAS
        if name not in existing
    }
    if FACE_CAMERA not in existing:
        try:
            videos[FACE_CAMERA] = make_face_video(data_dir / "demo" / f"{FACE_CAMERA}.avi")
            _enroll_demo_person(url, headers)
        except (FileNotFoundError, httpx.HTTPStatusError) as exc:
            console.print(f"[yellow]no face demo:[/yellow] {exc}")
            videos.pop(FACE_CAMERA, None)
    for name, video in videos.items():
        resp = httpx.post(
            f"{url}/v1/cameras",
            headers=headers,
            json={
                "name": name,
                "source_url": f"file://{video.resolve()}",
                "target_fps": 5,
                # The face camera first: it is the one that shows recognition.
                "priority": 10 if name == FACE_CAMERA else 0,
            },
        )
        resp.raise_for_status()


def _enroll_demo_person(url: str, headers: dict[str, str]) -> None:
    """The person in the face camera, enrolled from the portrait the video animates."""
    people = httpx.get(f"{url}/v1/people", params={"q": DEMO_PERSON}, headers=headers)
    if people.json()["total"]:
        return
    person = httpx.post(f"{url}/v1/people", json={"name": DEMO_PERSON}, headers=headers)
    person.raise_for_status()
    photo = portrait_path()
    enrolled = httpx.post(
        f"{url}/v1/people/{person.json()['id']}/faces",
        files={"files": (photo.name, photo.read_bytes(), "image/png")},
        headers=headers,
        timeout=120,  # the first enrollment loads the face models
    )
    enrolled.raise_for_status()


def run_demo(settings: Settings) -> int:
    data_dir = settings.data_dir.resolve()
    url = f"http://{settings.host}:{settings.port}"
    env = {**os.environ, "FACEFLEET_DATA_DIR": str(data_dir)}
    server = subprocess.Popen([sys.executable, "-m", "facefleet", "serve"], env=env)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        _wait_healthy(url, server)
        keys = json.loads((data_dir / "default-tenant-keys.json").read_text())["keys"]
        _seed_cameras(url, keys["admin"], data_dir)
        for worker_id in DEMO_WORKERS:
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "facefleet", "worker"],
                    env={
                        **env,
                        "WORKER_ID": worker_id,
                        "FACEFLEET_WORKER_API_URL": url,
                        "FACEFLEET_WORKER_API_KEY": keys["worker"],
                        "FACEFLEET_WORKER_STATE_DIR": str(data_dir / "workers" / worker_id),
                        "FACEFLEET_WORKER_CAPACITY": "2",
                    },
                )
            )
        console.rule("[bold]facefleet demo fleet")
        console.print(f"control plane   {url}   (OpenAPI docs: {url}/docs)")
        console.print(f"workers         {', '.join(DEMO_WORKERS)} streaming the demo cameras")
        console.print(
            f"recognition     {DEMO_PERSON} walks past {FACE_CAMERA}: "
            f"curl -H 'Authorization: Bearer <admin key>' {url}/v1/sightings"
        )
        console.print(f"admin key       in {data_dir / 'default-tenant-keys.json'}")
        console.print(
            f"watch           curl -H 'Authorization: Bearer <admin key>' {url}/v1/workers/stats"
        )
        tenant_id = json.loads((data_dir / "default-tenant-keys.json").read_text())["tenant_id"]
        console.print(
            f"live events     ws://{settings.host}:{settings.port}/v1/workers/ws/{tenant_id}"
            " with 'Authorization: Bearer <admin key>' (or: facefleet workers watch)"
        )
        console.print("Ctrl-C stops the workers cleanly, then the control plane.")
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()

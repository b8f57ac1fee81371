"""Real processes: the control plane (`facefleet serve`) and workers (`facefleet worker`),
each with its own log file, started and stopped (or killed) by the tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.live_server import free_port

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class ControlPlane:
    workdir: Path
    database_url: str
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "control-plane.log"

    def start(self) -> None:
        self.starts += 1
        env = {
            **os.environ,
            "FACEFLEET_DATA_DIR": str(self.workdir / "data"),
            "FACEFLEET_DATABASE_URL": self.database_url,
            "FACEFLEET_PORT": str(self.port),
            **self.env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "facefleet", "serve"],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_for(self._ready, 60, "the control plane to be ready")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"control plane exited: {self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(45)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(
                    f"the control plane ignored signal {sig} for 45 s: {self.log()[-3000:]}"
                ) from None
        self.process = None

    def keys(self) -> dict[str, str]:
        path = self.workdir / "data" / "default-tenant-keys.json"
        keys: dict[str, str] = json.loads(path.read_text())["keys"]
        return keys

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.keys()['admin']}"},
            timeout=10,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class WorkerProcess:
    worker_id: str
    control: ControlPlane
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"worker-{self.worker_id}.log"

    def start(self) -> WorkerProcess:
        home = self.workdir / f"home-{self.worker_id}"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "WORKER_ID": self.worker_id,
            "FACEFLEET_WORKER_API_URL": self.control.url,
            "FACEFLEET_WORKER_API_KEY": self.control.keys()["worker"],
            "FACEFLEET_WORKER_STATE_DIR": str(home / "state"),
            # One camera and one face process each unless a test says otherwise: the
            # defaults follow the machine's cores, which the fleet tests must not.
            "FACEFLEET_WORKER_CAPACITY": "1",
            "FACEFLEET_WORKER_FACE_PROCESSES": "1",
            **self.env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "facefleet", "worker"],
            cwd=home,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_detail(admin: httpx.Client, worker_id: str) -> dict[str, Any]:
    resp = admin.get(f"/v1/workers/{worker_id}")
    resp.raise_for_status()
    detail: dict[str, Any] = resp.json()
    return detail


def streaming_cameras(admin: httpx.Client, worker_id: str) -> set[int]:
    """Cameras a worker reports, in its own heartbeat metrics, as producing frames.

    Reads the list (never a 404 for a worker that has not registered yet), so the only
    404s a log can show come from the fleet itself.
    """
    items = admin.get("/v1/workers", params={"limit": 1000}).json()["items"]
    metrics: dict[str, Any] = next((w["metrics"] for w in items if w["worker_id"] == worker_id), {})
    out = set()
    for key, value in metrics.items():
        if (
            key.startswith("camera_")
            and isinstance(value, dict)
            and value.get("stream_state") == "streaming"
            and value.get("frames_processed", 0) > 0
        ):
            out.add(int(key.removeprefix("camera_")))
    return out


def worker_status(admin: httpx.Client, worker_id: str) -> str | None:
    items = admin.get("/v1/workers", params={"limit": 1000}).json()["items"]
    return next((w["status"] for w in items if w["worker_id"] == worker_id), None)

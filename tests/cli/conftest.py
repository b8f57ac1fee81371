"""A real control plane for the CLI tests, and the CLI run as its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.fleet import ControlPlane

# Simulated workers in these tests heartbeat rarely: long leases keep them live.
SLOW_LIVENESS = {"FACEFLEET_HEARTBEAT_INTERVAL": "10", "FACEFLEET_LEASE_TTL": "40"}


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Cli:
    control: ControlPlane

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACEFLEET_")}
        env.update(COLUMNS="200", **extra)
        return env

    def run(
        self,
        *args: str,
        key: str | None = "admin",
        url: str | None = None,
        cwd: Path | None = None,
        timeout: float = 180,
        **env: str,
    ) -> Run:
        """`facefleet ARGS` against the control plane; ``key`` is a role of the default
        tenant's keys, a literal key, or None for the command's own fallback."""
        conn = ["--api-url", url or self.control.url]
        if key is not None:
            conn += ["--api-key", self.control.keys().get(key, key)]
        done = subprocess.run(
            [sys.executable, "-m", "facefleet", *args, *conn],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=self.env(**env),
            stdin=subprocess.DEVNULL,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        conn = ["--api-url", self.control.url, "--api-key", self.control.keys()["admin"]]
        return subprocess.Popen(
            [sys.executable, "-m", "facefleet", *args, *conn],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("cli-control")
    plane = ControlPlane(
        workdir, f"sqlite+aiosqlite:///{workdir / 'facefleet.db'}", env=dict(SLOW_LIVENESS)
    )
    plane.start()
    yield plane
    plane.stop()


@pytest.fixture(scope="module")
def cli(control: ControlPlane) -> Cli:
    return Cli(control)

"""Servers under test: a facefleet control plane or a bare baseline app, each a child process
on a free loopback port, ready once it answers, stopped when its ``with`` block ends."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchlib.processes import HOST, Child, clean_env, spawn, wait_until_answers

BENCH_DIR = Path(__file__).resolve().parents[1]
FACEFLEET_APP = "facefleet.api.app:create_app"
# Every control plane a benchmark starts shares one encryption key, so replicas agree.
ENCRYPTION_KEYS = "pAAERf0esyur6lAIxcxG0P9GmYBiBHkL4MSvhDPfMuk="


def uvicorn_argv(app: str, port: int, *flags: str) -> list[str]:
    """The command line of every uvicorn-served app (an app factory, found with bench/ on the
    path), so that between a baseline and facefleet only the application differs."""
    return [
        *(sys.executable, "-m", "uvicorn", app, "--factory", "--app-dir", str(BENCH_DIR)),
        *("--host", HOST, "--port", str(port), *flags),
    ]


def facefleet_argv(*args: str) -> list[str]:
    """The ``facefleet`` command, as an operator runs it."""
    return [sys.executable, "-m", "facefleet", *args]


def facefleet_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """A clean environment with ``FACEFLEET_DATA_DIR``, the shared encryption key and
    ``FACEFLEET_<NAME>`` per setting."""
    named = {f"FACEFLEET_{name.upper()}": value for name, value in settings.items()}
    return clean_env(
        FACEFLEET_DATA_DIR=str(data_dir), FACEFLEET_ENCRYPTION_KEYS=ENCRYPTION_KEYS, **named
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@dataclass(frozen=True)
class TenantKeys:
    """The bootstrapped default tenant: its id and an API key per role."""

    tenant_id: str
    keys: dict[str, str]

    @property
    def admin(self) -> str:
        return self.keys["admin"]

    @property
    def worker(self) -> str:
        return self.keys["worker"]


def tenant_keys(data_dir: Path) -> TenantKeys:
    payload = json.loads((data_dir / "default-tenant-keys.json").read_text())
    return TenantKeys(str(payload["tenant_id"]), dict(payload["keys"]))


@dataclass(frozen=True)
class Probe:
    """What shows that a server is ready: the status ``path`` answers with."""

    path: str
    accept: Callable[[int], bool]


ANSWERS = Probe("/", lambda status: status < 500)  # a bare app: any answer
HEALTHY = Probe("/healthz", lambda status: status == 200)
READY = Probe("/readyz", lambda status: status == 200)  # its database and Redis answer too


@dataclass
class Server:
    child: Child
    port: int
    data_dir: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu(self) -> float | None:
        return self.child.cpu()

    def keys(self) -> TenantKeys:
        return tenant_keys(self.data_dir)

    def stop(self) -> None:
        self.child.stop()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_server(
    name: str,
    argv: list[str],
    *,
    port: int,
    env: dict[str, str],
    cwd: Path,
    probe: Probe,
    data_dir: Path | None = None,
    cpus: set[int] | None = None,
) -> Server:
    """Start it (pinned to ``cpus`` if given) and wait until ``probe`` passes; a ``with``
    block on the server stops it at the block's end."""
    cwd.mkdir(parents=True, exist_ok=True)
    child = spawn(name, argv, env=env, cwd=cwd, log_dir=cwd)
    try:
        if cpus:
            os.sched_setaffinity(child.pid, cpus)
        wait_until_answers(child, f"http://{HOST}:{port}{probe.path}", probe.accept)
    except BaseException:
        child.stop()
        raise
    return Server(child, port, data_dir or cwd)

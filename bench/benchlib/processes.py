"""Child processes of a benchmark: each with its own log file, all stopped on every way out
(a normal end, an error, Ctrl-C, SIGTERM, and on Linux the benchmark being killed)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

from benchlib.cpu import process_cpu

HOST = "127.0.0.1"


class BenchError(Exception):
    """The system under test did not do what the benchmark waits for within its bound."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without facefleet's own settings, plus ``extra``.

    An inherited FACEFLEET_* variable (a Redis URL, other timings) or WORKER_ID would change
    what is measured: children run on the defaults unless a benchmark sets a value.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FACEFLEET_") and k != "WORKER_ID"
    }
    env.update(extra)
    return env


_LIBC: Any = None
if sys.platform == "linux":
    with contextlib.suppress(OSError):
        _LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In the child: be killed if the benchmark dies without cleaning up (Linux only)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu(self) -> float | None:
        return process_cpu(self.process.pid)

    def tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self, timeout: float = 15.0) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait(timeout)

    def stop(self, timeout: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> None:
        """``sig``, then SIGKILL if it has not exited within ``timeout``; closes the log."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log_file.close()


def spawn(name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_dir: Path) -> Child:
    """Start ``argv`` with its output in ``log_dir/<name>.log``.

    It gets a session of its own, so Ctrl-C reaches the benchmark alone, which stops it.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("ab")
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    except BaseException:
        log_file.close()
        raise
    return Child(name, process, log_path, log_file)


def wait_until_answers(
    child: Child, url: str, accept: Callable[[int], bool], timeout: float = 60.0
) -> None:
    """Poll ``url`` until its status passes ``accept``; BenchError if the child exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if not child.alive:
            raise BenchError(f"{child.name} exited at start-up:\n{child.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if accept(httpx.get(url, timeout=1.0).status_code):
                return
        if time.monotonic() > deadline:
            raise BenchError(f"{child.name} did not answer {url} within {timeout:.0f} s")
        time.sleep(0.1)


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every finally block stops its children."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

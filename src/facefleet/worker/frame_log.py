"""A record of every frame the worker processes: when its processing started and ended,
by which worker, of which camera at which epoch, one line each.

Set ``FACEFLEET_WORKER_FRAME_LOG`` to a file to keep it: an audit of who processed which
camera when (the chaos suite checks from it that no two workers ever processed one camera at
the same time). Each line is written with one ``write`` on an append-only file, so a process
killed at any moment leaves whole lines.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


class FrameLog:
    def __init__(self, path: Path | str, worker_id: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._worker_id = worker_id

    def record(self, started: float, camera_id: int, epoch: int) -> None:
        line = f"{started:.4f} {time.time():.4f} {self._worker_id} {camera_id} {epoch}\n"
        os.write(self._fd, line.encode())

    def close(self) -> None:
        os.close(self._fd)

"""Whether a camera is actually being processed, not only leased.

A camera's state comes from its lease row (holder, epoch, failures) and from its holder's
own report of the stream in its latest heartbeat:

- ``disabled``: switched off by an operator;
- ``unassigned``: nobody holds it, and it is not failing;
- ``failing``: its last stream failed (``last_error``); it waits out a backoff before it is
  offered again;
- ``starting``: held, and its holder has not reported frames from it yet;
- ``streaming``: its holder reports frames arriving;
- ``stalled``: held, but no frames: the source stopped or is reconnecting, or the holder
  itself went silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from facefleet.api.clock import to_datetime
from facefleet.api.storage.db.models import CameraLease
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.protocol.enums import WorkerStatus

CameraState = Literal["disabled", "unassigned", "failing", "starting", "streaming", "stalled"]
NOT_PROCESSED: frozenset[CameraState] = frozenset({"unassigned", "failing", "starting", "stalled"})


@dataclass(frozen=True)
class Processing:
    state: CameraState
    worker_id: str | None = None
    fps: float = 0.0
    frames_processed: int = 0
    last_error: str | None = None

    def as_event(self, camera_id: int) -> dict[str, Any]:
        return {
            "camera_id": camera_id,
            "state": self.state,
            "worker_id": self.worker_id,
            "fps": self.fps,
            "frames_processed": self.frames_processed,
            "last_error": self.last_error,
        }


def stream_report(worker: LiveWorker, camera_id: int, epoch: int) -> dict[str, Any] | None:
    """The worker's latest report of this camera at this epoch."""
    for report in worker.streams:
        if report.get("camera_id") == camera_id and report.get("epoch") == epoch:
            return report
    return None


def held_state(
    worker: LiveWorker | None, camera_id: int, epoch: int, now: float, holder: str | None
) -> Processing:
    """The state of a camera held at ``epoch`` by ``holder``, whose hot record (if it has a
    live one) is ``worker``."""
    if worker is None or not worker.is_live or worker.deadline <= now:
        return Processing("stalled", holder)
    report = stream_report(worker, camera_id, epoch)
    if report is None:
        return Processing("starting", worker.worker_id)
    reported = report.get("state")
    state: CameraState = "stalled"
    if reported == "streaming" and worker.status != WorkerStatus.suspect:
        state = "streaming"
    elif reported == "starting":
        state = "starting"
    return Processing(
        state,
        worker.worker_id,
        float(report.get("fps") or 0.0),
        int(report.get("frames_processed") or 0),
        report.get("last_error"),
    )


def camera_state(
    enabled: bool,
    lease: CameraLease,
    holder_id: str | None,
    live: LiveWorker | None,
    now: float,
) -> Processing:
    """``holder_id`` is the worker_id of the lease's holder, ``live`` its hot record."""
    if not enabled:
        return Processing("disabled")
    if lease.worker_pk is None:
        waiting = lease.backoff_until is not None and lease.backoff_until > to_datetime(now)
        if waiting or lease.failures:
            return Processing("failing", last_error=lease.last_error)
        return Processing("unassigned")
    if live is not None and live.pk != lease.worker_pk:
        live = None
    return held_state(live, lease.camera_id, lease.epoch, now, holder_id)

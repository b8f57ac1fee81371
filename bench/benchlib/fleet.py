"""A real fleet on loopback: a control plane (``facefleet serve``, SQLite in a work directory)
and ``facefleet worker`` processes with their defaults, and what the control plane's API shows
of them and of a camera. ``ready_pair`` sets up a handover: one worker streaming a camera and
an idle spare."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchlib.processes import HOST, BenchError, Child, clean_env, free_port, spawn
from benchlib.servers import (
    HEALTHY,
    TenantKeys,
    facefleet_argv,
    facefleet_env,
    sqlite_url,
    start_server,
    tenant_keys,
)

PROBLEM = re.compile(r"\bWARNING\b|\bERROR\b|Traceback|\b404\b")
POLL = 0.05
READY_TIMEOUT = 90.0
EXIT_TIMEOUT = 15.0
# A stream opens in milliseconds and shows in the next heartbeat (2.2 s at most at the default
# timing): a lease held this long with no stream reported is a camera nobody processes.
STUCK_AFTER = 10.0


class Fleet:
    """The control plane and the workers of one run; close() kills whatever is left."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.control: Child | None = None
        self.workers: dict[str, Child] = {}
        self.children: list[Child] = []

    def start_control(self) -> None:
        env = facefleet_env(
            self.workdir / "data",
            database_url=sqlite_url(self.workdir / "facefleet.db"),
            host=HOST,
            port=str(self.port),
        )
        server = start_server(
            "control-plane",
            facefleet_argv("serve"),
            port=self.port,
            env=env,
            cwd=self.workdir,
            probe=HEALTHY,
            data_dir=self.workdir / "data",
        )
        self.control = server.child
        self.children.append(server.child)

    def keys(self) -> TenantKeys:
        return tenant_keys(self.workdir / "data")

    def start_worker(self, worker_id: str) -> Child:
        home = self.workdir / f"home-{worker_id}"
        home.mkdir(parents=True, exist_ok=True)
        env = clean_env(
            WORKER_ID=worker_id,
            FACEFLEET_WORKER_API_URL=self.url,
            FACEFLEET_WORKER_API_KEY=self.keys().worker,
            FACEFLEET_WORKER_STATE_DIR=str(home / "state"),
            FACEFLEET_WORKER_FRAME_LOG=str(self.frame_log(worker_id)),
        )
        argv = facefleet_argv("worker")
        child = spawn(f"worker-{worker_id}", argv, env=env, cwd=home, log_dir=self.workdir)
        self.children.append(child)
        self.workers[worker_id] = child
        return child

    def frame_log(self, worker_id: str) -> Path:
        """Where the worker records every frame it processes (start, end, camera, epoch)."""
        return self.workdir / f"frames-{worker_id}.log"

    def first_frame_after(self, worker_id: str, camera_id: int, after: float) -> float | None:
        """When the worker started processing its first frame of the camera after ``after``
        (wall clock, from its frame log)."""
        try:
            lines = self.frame_log(worker_id).read_text().splitlines()
        except FileNotFoundError:
            return None
        starts = [
            float(parts[0])
            for parts in (line.split() for line in lines)
            if len(parts) == 5 and int(parts[3]) == camera_id and float(parts[0]) > after
        ]
        return min(starts, default=None)

    def alive_workers(self) -> set[str]:
        return {wid for wid, child in self.workers.items() if child.alive}

    def log_problems(self, limit: int = 5) -> dict[str, list[str]]:
        """Lines of each log that show an error, a traceback or a 404 (first few)."""
        found: dict[str, list[str]] = {}
        for child in self.children:
            lines = [
                line.strip()
                for line in child.log_path.read_text(errors="replace").splitlines()
                if PROBLEM.search(line)
            ]
            if lines:
                found[child.name] = lines[:limit] + (
                    [f"... {len(lines) - limit} more"] if len(lines) > limit else []
                )
        return found

    def close(self) -> None:
        """Kill every worker, stop the control plane, reap everything."""
        for child in self.children:
            if child is not self.control:
                child.stop(timeout=10, sig=signal.SIGKILL)
        if self.control is not None:
            self.control.stop(timeout=10)


def parse_time(value: object) -> float | None:
    """A timestamp of the API as seconds since the epoch (naive means UTC)."""
    if not isinstance(value, str):
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class WorkerView:
    worker_id: str
    status: str
    last_seen: float | None  # server clock, seconds since the epoch
    leases: int
    stream_state: str | None  # of the observed camera, from the worker's own metrics
    frames: int | None  # frames_processed of that camera, None while not reported

    def streams(self, more_than: int = 0) -> bool:
        return (
            self.stream_state == "streaming" and self.frames is not None and self.frames > more_than
        )


@dataclass(frozen=True)
class View:
    at: float  # monotonic, when both answers were in
    holder: str | None
    assigned_at: float | None
    workers: dict[str, WorkerView]


def observe(admin: httpx.Client, camera_id: int) -> View:
    """One camera's lease and every worker's state and metrics for it, as the API shows them."""
    cameras = admin.get("/v1/cameras", params={"limit": 1000})
    cameras.raise_for_status()
    camera = next(c for c in cameras.json()["items"] if c["id"] == camera_id)
    listed = admin.get("/v1/workers", params={"limit": 1000})
    listed.raise_for_status()
    at = time.monotonic()
    workers: dict[str, WorkerView] = {}
    for item in listed.json()["items"]:
        metrics = item.get("metrics") or {}
        cam = metrics.get(f"camera_{camera_id}")
        cam = cam if isinstance(cam, dict) else {}
        frames = cam.get("frames_processed")
        workers[item["worker_id"]] = WorkerView(
            worker_id=item["worker_id"],
            status=item["status"],
            last_seen=parse_time(item.get("last_seen_at")),
            leases=len(item.get("cameras") or []),
            stream_state=cam.get("stream_state"),
            frames=frames if isinstance(frames, int) else None,
        )
    lease = camera["lease"]
    return View(at, lease["worker_id"], parse_time(lease.get("assigned_at")), workers)


# -- a handover: one worker streams the camera, a spare idles ------------------------------


@dataclass
class Incident:
    when: str
    worker_id: str
    what: str
    log: list[str]


def stuck(view: View, worker_id: str) -> bool:
    """The worker has held the camera's lease for STUCK_AFTER s without reporting a stream."""
    worker = view.workers.get(worker_id)
    return (
        view.holder == worker_id
        and view.assigned_at is not None
        and time.time() - view.assigned_at > STUCK_AFTER
        and (worker is None or not worker.streams())
    )


def incident(fleet: Fleet, view: View, when: str, worker_id: str, camera_id: int) -> Incident:
    """Record a stuck worker and kill it, so that its lease lapses and the camera moves on."""
    worker = view.workers.get(worker_id)
    state = None if worker is None else worker.stream_state
    what = (
        f"{worker_id} has held camera {camera_id} for more than {STUCK_AFTER:.0f} s "
        f"without streaming it (its metrics show stream_state {state})"
    )
    lines = [
        line
        for line in fleet.workers[worker_id].tail(100_000).splitlines()
        if f"camera {camera_id}" in line
    ]
    print(f"  ! {when}: {what}; its log: {' | '.join(lines[-3:])}", flush=True)
    fleet.workers[worker_id].kill(EXIT_TIMEOUT)
    return Incident(when, worker_id, what, lines[-5:])


def ready_pair(
    fleet: Fleet,
    admin: httpx.Client,
    camera_id: int,
    names: Iterator[str],
    incidents: list[Incident],
    when: str,
) -> tuple[str, str]:
    """(holder, spare): one live worker streams the camera and one more idles online.

    Starts workers (named from ``names``) until two are alive. A holder stuck without a stream
    is recorded as an incident and killed, so its lease lapses and the camera moves on.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        started = time.monotonic()
        view = observe(admin, camera_id)
        alive = fleet.alive_workers()
        holder = view.holder
        if holder is not None and holder in alive and stuck(view, holder):
            incidents.append(incident(fleet, view, when, holder, camera_id))
            alive.discard(holder)
        while len(alive) < 2:
            worker_id = next(names)
            fleet.start_worker(worker_id)
            alive.add(worker_id)
        if holder is not None and holder in alive and len(alive) == 2:
            (spare,) = alive - {holder}
            held, idle = view.workers.get(holder), view.workers.get(spare)
            if (
                held is not None
                and held.streams()
                and idle is not None
                and idle.status == "online"
                and not idle.leases
            ):
                return holder, spare
        if started > deadline:
            raise BenchError(
                f"{when}: no streaming holder and idle spare within {READY_TIMEOUT:.0f} s; "
                f"last view {view}"
            )
        time.sleep(max(0.0, POLL - (time.monotonic() - started)))

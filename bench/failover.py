"""Failover benchmark: time from ``kill -9`` of a worker to its camera producing frames on
another worker, with the default timing (2 s heartbeat, 6 s lease TTL), on loopback only.

One control plane (``facefleet serve``, SQLite in a temporary directory, a free port on
127.0.0.1), one demo camera (``file://`` of a looping AVI from ``make_demo_video``), a
worker holding it and an idle spare, all real processes. Each trial waits until the camera
streams on one worker, waits a random part of a heartbeat interval (so the kill lands at a
random point of the victim's heartbeat cycle, as a real crash would), signals the holder and
polls ``GET /v1/cameras`` and ``GET /v1/workers`` every 50 ms until the other worker's own
heartbeat metrics show the camera streaming with frames processed since the signal. A fresh
worker (new WORKER_ID) then becomes the spare of the next trial.

The lease and the frames are timed apart: "released" when the camera's lease holder becomes
null or changes, "assigned" from the lease's assigned_at, "first frame" estimated from the
frame count of the spare's first report, and "reported" (the figure) when that report shows.
A worker that holds the lease for 10 s without reporting a stream is an incident: the trial
does not complete, the worker is killed so its lease lapses, and one more trial of the same
kind is run (at most --trials more in all).

Most trials send SIGKILL: the camera moves only once the control plane lets the dead
worker's lease lapse. A few send SIGTERM: the worker stops its stream, signals shutdown and
deregisters, which frees the camera at once. The ratio of the two medians is what the lease
TTL costs.

    .venv/bin/python bench/failover.py
    .venv/bin/python bench/failover.py --trials 20 --graceful-trials 5 --json failover.json

Every step is bounded (60 s to start the control plane, 90 s to get a streaming holder and a
spare, 30 s for a failover), and every process the script starts is killed on exit, on an
error, on Ctrl-C and on SIGTERM (and, on Linux, when the script itself is killed).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any, Literal

import httpx

from facefleet.demo.video import make_demo_video
from facefleet.worker.pipeline.source import FrameSource

HOST = "127.0.0.1"
TARGET_SECONDS = 10.0
# The defaults this benchmark is about; the workers' registration log is checked against them.
HEARTBEAT_INTERVAL = 2.0
LEASE_TTL = 6.0
REAPER_PERIOD = 0.5
RETRY_AFTER = 2.0
CAMERA_FPS = 5.0
POLL = 0.05
SETUP_TIMEOUT = 60.0
READY_TIMEOUT = 90.0
FAILOVER_TIMEOUT = 30.0
# A stream opens in milliseconds and shows in the next heartbeat (2.2 s at most): a lease held
# this long with no stream reported is a camera nobody processes.
STUCK_AFTER = 10.0
EXIT_TIMEOUT = 15.0

PROBLEM = re.compile(r"\bWARNING\b|\bERROR\b|Traceback|\b404\b")

Mode = Literal["kill9", "graceful"]


class BenchError(Exception):
    """The fleet did not do what a trial waits for within its bound."""


# -- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(**extra: str) -> dict[str, str]:
    """This environment without any facefleet setting, so children run on the defaults."""
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
    """In the child: be killed if this script dies without cleaning up (Linux only)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


class Fleet:
    """The control plane and the workers of one run; close() kills whatever is left."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.control: Child | None = None
        self.workers: dict[str, Child] = {}
        self.children: list[Child] = []

    def _spawn(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> Child:
        log_path = self.workdir / f"{name}.log"
        log_file = log_path.open("ab")
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "facefleet", *args],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches this script only, which cleans up
                preexec_fn=_die_with_parent,
            )
        except BaseException:
            log_file.close()
            raise
        child = Child(name, process, log_path, log_file)
        self.children.append(child)
        return child

    def start_control(self) -> None:
        env = child_env(
            FACEFLEET_DATA_DIR=str(self.workdir / "data"),
            FACEFLEET_DATABASE_URL=f"sqlite+aiosqlite:///{self.workdir / 'facefleet.db'}",
            FACEFLEET_HOST=HOST,
            FACEFLEET_PORT=str(self.port),
        )
        self.control = self._spawn("control-plane", ["serve"], env, self.workdir)
        deadline = time.monotonic() + SETUP_TIMEOUT
        while True:
            if not self.control.alive:
                raise BenchError(f"the control plane exited:\n{self.control.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise BenchError(f"the control plane was not ready in {SETUP_TIMEOUT:.0f} s")
            time.sleep(0.1)

    def keys(self) -> dict[str, str]:
        path = self.workdir / "data" / "default-tenant-keys.json"
        keys: dict[str, str] = json.loads(path.read_text())["keys"]
        return keys

    def start_worker(self, worker_id: str) -> Child:
        home = self.workdir / f"home-{worker_id}"
        home.mkdir(parents=True, exist_ok=True)
        env = child_env(
            WORKER_ID=worker_id,
            FACEFLEET_WORKER_API_URL=self.url,
            FACEFLEET_WORKER_API_KEY=self.keys()["worker"],
            FACEFLEET_WORKER_STATE_DIR=str(home / "state"),
        )
        child = self._spawn(f"worker-{worker_id}", ["worker"], env, home)
        self.workers[worker_id] = child
        return child

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
            if child is not self.control and child.alive:
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
        if self.control is not None and self.control.alive:
            with contextlib.suppress(ProcessLookupError):
                self.control.process.terminate()
            try:
                self.control.process.wait(10)
            except subprocess.TimeoutExpired:
                self.control.process.kill()
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(10)
            child.log_file.close()


# -- what the control plane shows -------------------------------------------------------------


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
    stream_state: str | None  # of the benchmark's camera, from the worker's own metrics
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


# -- one trial --------------------------------------------------------------------------------


@dataclass
class Trial:
    index: int
    mode: Mode
    victim: str
    spare: str
    completed: bool  # False: the spare took the lease but did not stream (see Incident)
    heartbeat_age: float | None  # victim's silence when signalled (server's last_seen)
    released: float | None  # the camera's lease holder became null or changed (polled)
    assigned: float | None  # the spare's lease assigned_at (server clock)
    first_frame: float | None  # estimated from the spare's first report, see estimate_start
    reported: float | None  # the spare's heartbeat shows new frames (polled): the figure
    frames_at_report: int
    exited: float | None  # the victim process was gone (graceful: its own exit)
    exit_code: int | None


@dataclass
class Incident:
    when: str
    worker_id: str
    what: str
    log: list[str]


def estimate_start(worker: WorkerView) -> float | None:
    """When the first frame was processed, from the report that shows ``frames`` of them.

    The stream processes its first frame as soon as it has one, then one per 1/fps, and the
    metrics are sampled just before the heartbeat that the server stamps as last_seen.
    """
    if worker.last_seen is None or worker.frames is None:
        return None
    return worker.last_seen - (worker.frames - 1) / CAMERA_FPS


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
    return Incident(when, worker_id, what, lines[-5:])


def ensure_ready(
    fleet: Fleet,
    admin: httpx.Client,
    camera_id: int,
    names: Iterator[str],
    incidents: list[Incident],
    when: str,
) -> tuple[str, str]:
    """(holder, spare): one live worker streams the camera and one more idles online.

    Starts workers until two are alive. A holder stuck without a stream is recorded as an
    incident and killed, so its lease lapses and the camera moves on.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        started = time.monotonic()
        view = observe(admin, camera_id)
        alive = fleet.alive_workers()
        holder = view.holder
        if holder is not None and holder in alive and stuck(view, holder):
            incidents.append(incident(fleet, view, when, holder, camera_id))
            fleet.workers[holder].process.kill()
            fleet.workers[holder].process.wait(EXIT_TIMEOUT)
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


def run_trial(
    fleet: Fleet,
    admin: httpx.Client,
    camera_id: int,
    index: int,
    mode: Mode,
    pair: tuple[str, str],
    rng: random.Random,
    incidents: list[Incident],
) -> Trial:
    holder, spare = pair
    time.sleep(rng.uniform(0.0, HEARTBEAT_INTERVAL))
    before = observe(admin, camera_id)
    if before.holder != holder or not before.workers[holder].streams():
        raise BenchError(f"trial {index}: {holder} lost the camera before the signal")
    spare_before = before.workers[spare]
    baseline = spare_before.frames if spare_before.stream_state is not None else None
    victim = fleet.workers[holder].process

    killed_wall = time.time()
    killed = time.monotonic()
    victim.send_signal(signal.SIGKILL if mode == "kill9" else signal.SIGTERM)
    last_seen = before.workers[holder].last_seen
    heartbeat_age = None if last_seen is None else killed_wall - last_seen

    released: float | None = None
    exited: float | None = None
    reporter: WorkerView | None = None
    while True:
        started = time.monotonic()
        if exited is None and victim.poll() is not None:
            exited = started - killed
        view = observe(admin, camera_id)
        elapsed = view.at - killed
        if released is None and view.holder != holder:
            released = elapsed
        taker = view.workers.get(spare)
        if taker is not None and taker.streams(more_than=baseline or 0):
            reporter = taker
            break
        if stuck(view, spare):
            incidents.append(incident(fleet, view, f"trial {index}", spare, camera_id))
            fleet.workers[spare].process.kill()  # so that its lease lapses for the next trial
            fleet.workers[spare].process.wait(EXIT_TIMEOUT)
            break
        if elapsed > FAILOVER_TIMEOUT:
            raise BenchError(
                f"trial {index} ({mode}): {spare} did not stream camera {camera_id} within "
                f"{FAILOVER_TIMEOUT:.0f} s of signalling {holder}; last view {view}"
            )
        time.sleep(max(0.0, POLL - (time.monotonic() - started)))
    if released is None and reporter is not None:  # holder and frames changed within one poll
        released = elapsed

    try:
        code = victim.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"trial {index}: {holder} did not exit after {mode}") from exc
    if exited is None:
        exited = time.monotonic() - killed
    assigned = (
        view.assigned_at - killed_wall
        if view.holder == spare and view.assigned_at is not None
        else None
    )
    start = None if reporter is None else estimate_start(reporter)
    return Trial(
        index=index,
        mode=mode,
        victim=holder,
        spare=spare,
        completed=reporter is not None,
        heartbeat_age=heartbeat_age,
        released=released,
        assigned=assigned,
        first_frame=None if start is None else start - killed_wall,
        reported=elapsed if reporter is not None else None,
        frames_at_report=0 if reporter is None else reporter.frames or 0,
        exited=exited,
        exit_code=code,
    )


# -- setup, schedule, report ------------------------------------------------------------------


def stream_open_times(url: str, rounds: int = 5) -> list[float]:
    """Seconds from starting a FrameSource on the demo file to its first frame."""
    out = []
    for _ in range(rounds):
        began = time.monotonic()
        source = FrameSource(url)
        source.start()
        try:
            while source.latest() is None:
                if time.monotonic() - began > SETUP_TIMEOUT:
                    raise BenchError(f"no frame from {url}")
                time.sleep(0.001)
            out.append(time.monotonic() - began)
        finally:
            source.stop()
    return out


def check_defaults(log: str) -> tuple[float, float]:
    match = re.search(r"heartbeat ([\d.]+)s, lease TTL ([\d.]+)s", log)
    if match is None:
        raise BenchError("the worker log shows no registration line")
    heartbeat, ttl = float(match[1]), float(match[2])
    if (heartbeat, ttl) != (HEARTBEAT_INTERVAL, LEASE_TTL):
        raise BenchError(f"not the defaults: heartbeat {heartbeat} s, lease TTL {ttl} s")
    return heartbeat, ttl


def schedule(trials: int, graceful: int) -> list[Mode]:
    """The kill -9 trials with the graceful ones spread evenly among them."""
    total = trials + graceful
    spots = {int((j + 0.5) * total / graceful) for j in range(graceful)} if graceful else set()
    return ["graceful" if i in spots else "kill9" for i in range(total)]


def fmt(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.2f}"


def print_trial(trial: Trial) -> None:
    print(
        f"{trial.index:3d}  {trial.mode:8s}  {trial.victim:>8s} -> {trial.spare:<8s}"
        f"  {fmt(trial.heartbeat_age)}   {fmt(trial.released)}    {fmt(trial.assigned)}"
        f"      {fmt(trial.first_frame)}    {fmt(trial.reported)}"
        + ("" if trial.completed else "   did not complete: the spare never streamed"),
        flush=True,
    )


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def component(trials: list[Trial], pick: Callable[[Trial], float | None]) -> dict[str, float]:
    values = [v for v in (pick(t) for t in trials) if v is not None]
    return summarize(values) if values else {}


def gap(earlier: float | None, later: float | None) -> float | None:
    return None if earlier is None or later is None else later - earlier


def report(trials: list[Trial]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("kill9", "graceful"):
        attempted = [t for t in trials if t.mode == mode]
        chosen = [t for t in attempted if t.completed]
        if not attempted:
            continue
        out[mode] = {
            "n": len(chosen),
            "attempted": len(attempted),
            "reported": component(chosen, lambda t: t.reported),
            "released": component(chosen, lambda t: t.released),
            "assigned": component(chosen, lambda t: t.assigned),
            "first_frame": component(chosen, lambda t: t.first_frame),
            "heartbeat_age": component(chosen, lambda t: t.heartbeat_age),
            "release_to_assigned": component(chosen, lambda t: gap(t.released, t.assigned)),
            "assigned_to_reported": component(chosen, lambda t: gap(t.assigned, t.reported)),
        }
    kill9 = out.get("kill9", {}).get("reported", {})
    graceful = out.get("graceful", {}).get("reported", {})
    if kill9:
        out["ratio_to_target"] = kill9["median"] / TARGET_SECONDS
        out["max_to_target"] = kill9["max"] / TARGET_SECONDS
    if kill9 and graceful:
        out["ratio_kill9_to_graceful"] = kill9["median"] / graceful["median"]
        k_first = out["kill9"]["first_frame"]
        g_first = out["graceful"]["first_frame"]
        if k_first and g_first:
            out["ratio_kill9_to_graceful_first_frame"] = k_first["median"] / g_first["median"]
    return out


def print_summary(summary: dict[str, Any]) -> None:
    print()
    for mode, title in (("kill9", "kill -9"), ("graceful", "SIGTERM")):
        part = summary.get(mode)
        if not part:
            continue
        failed = part["attempted"] - part["n"]
        print(
            f"{title} ({part['n']} trials"
            + (f"; {failed} more did not complete" if failed else "")
            + "), seconds after the signal, median / max:"
        )
        rows = [
            ("camera released by the control plane", "released"),
            ("lease assigned to the spare", "assigned"),
            ("first frame on the spare (estimated)", "first_frame"),
            ("frames reported by the spare", "reported"),
            ("  of which release -> assignment", "release_to_assigned"),
            ("  of which assignment -> report", "assigned_to_reported"),
        ]
        for label, key in rows:
            stats = part.get(key)
            if stats:
                print(f"  {label:40s} {stats['median']:6.2f} / {stats['max']:6.2f}")
        age = part.get("heartbeat_age")
        if age and mode == "kill9":
            print(
                f"  {'victim silent at the signal, min .. max':40s} "
                f"{age['min']:6.2f} .. {age['max']:.2f}"
            )
    if "ratio_to_target" in summary:
        print(
            f"\nkill -9 failover against the {TARGET_SECONDS:.0f} s target: median "
            f"{summary['ratio_to_target']:.2f}x, max {summary['max_to_target']:.2f}x"
        )
    if "ratio_kill9_to_graceful" in summary:
        print(
            f"kill -9 / graceful (medians): {summary['ratio_kill9_to_graceful']:.2f}x "
            "until reported"
            + (
                f", {summary['ratio_kill9_to_graceful_first_frame']:.2f}x until the first frame"
                if "ratio_kill9_to_graceful_first_frame" in summary
                else ""
            )
        )
    if summary.get("incidents"):
        print("\ncameras held without a stream (the holder was killed so the lease could lapse):")
        for item in summary["incidents"]:
            print(f"  {item['when']}: {item['what']}")
            for line in item["log"][-3:]:
                print(f"      {line}")
    problems = summary.get("log_problems")
    if problems:
        print("\nlog lines with WARNING, ERROR, Traceback or 404:")
        for name, lines in problems.items():
            for line in lines:
                print(f"  {name}: {line}")


def load() -> list[float] | None:
    with contextlib.suppress(OSError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every finally block cleans up."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="facefleet-failover-") as tmp:
        workdir = Path(tmp)
        video = make_demo_video(workdir / "demo.avi", seconds=10, fps=15)
        url = f"file://{video}"
        opens = stream_open_times(url)
        fleet = Fleet(workdir)
        trials: list[Trial] = []
        incidents: list[Incident] = []
        load_before = load()
        try:
            fleet.start_control()
            with httpx.Client(
                base_url=fleet.url,
                headers={"Authorization": f"Bearer {fleet.keys()['admin']}"},
                timeout=5,
            ) as admin:
                created = admin.post(
                    "/v1/cameras",
                    json={"name": "failover-cam", "source_url": url, "target_fps": CAMERA_FPS},
                )
                if created.status_code != 201:
                    raise BenchError(f"could not add the camera: {created.text}")
                camera_id: int = created.json()["id"]
                names = (f"w{n:02d}" for n in range(1, 1000))
                pair = ensure_ready(fleet, admin, camera_id, names, incidents, "setup")
                heartbeat, ttl = check_defaults(fleet.workers[pair[0]].tail(100_000))
                print(
                    f"control plane {fleet.url}, camera {camera_id} at {CAMERA_FPS:g} fps, "
                    f"heartbeat {heartbeat:g} s, lease TTL {ttl:g} s; stream open "
                    f"{statistics.median(opens) * 1000:.0f} ms (median of {len(opens)})\n"
                )
                print(
                    "  #  mode        victim -> spare     hb age  released  assigned  "
                    "first frame  reported   (seconds after the signal)"
                )
                modes = deque(schedule(args.trials, args.graceful_trials))
                retries = 0
                while modes:
                    mode = modes.popleft()
                    index = len(trials) + 1
                    if trials:
                        pair = ensure_ready(
                            fleet, admin, camera_id, names, incidents, f"before trial {index}"
                        )
                    trial = run_trial(fleet, admin, camera_id, index, mode, pair, rng, incidents)
                    trials.append(trial)
                    print_trial(trial)
                    if not trial.completed and retries < args.trials:
                        retries += 1  # another trial of that mode, so the count holds
                        modes.append(mode)
        except BenchError:
            fleet.close()
            for child in fleet.children:
                print(f"--- {child.name} (last lines)\n{child.tail(1500)}", file=sys.stderr)
            raise
        finally:
            fleet.close()
        problems = fleet.log_problems()
    summary = report(trials)
    summary["log_problems"] = problems
    summary["incidents"] = [asdict(i) for i in incidents]
    print_summary(summary)
    return {
        "settings": {
            "heartbeat_interval": HEARTBEAT_INTERVAL,
            "lease_ttl": LEASE_TTL,
            "reaper_period": REAPER_PERIOD,
            "retry_after": RETRY_AFTER,
            "camera_fps": CAMERA_FPS,
            "poll_seconds": POLL,
            "target_seconds": TARGET_SECONDS,
            "seed": args.seed,
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": load(),
        },
        "stream_open_seconds": opens,
        "trials": [asdict(t) for t in trials],
        "summary": summary,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time from kill -9 of a worker to its camera's frames on another worker."
    )
    parser.add_argument("--trials", type=int, default=10, help="kill -9 trials (default 10)")
    parser.add_argument(
        "--graceful-trials", type=int, default=4, help="SIGTERM trials, the baseline (default 4)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill timing")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.graceful_trials < 0:
        parser.error("need --trials >= 1 and --graceful-trials >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with terminate_on_sigterm():
            results = run(args)
    except BenchError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the processes it started are stopped", file=sys.stderr)
        return 130
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

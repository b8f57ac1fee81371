"""Failover benchmark: time from ``kill -9`` of a worker to its camera producing frames on
another worker, at the default timing (2 s heartbeat, 6 s lease TTL, 2 s presence grace),
on loopback only.

One control plane (``facefleet serve``, SQLite in a temporary directory, a free port on
127.0.0.1), one demo camera (``file://`` of a looping AVI from ``make_demo_video``), a
worker holding it and an idle spare, all real processes. Each trial waits until the camera
streams on one worker, waits a random part of a heartbeat interval (so the kill lands at a
random point of the victim's heartbeat cycle, as a real crash would), signals the holder and
polls ``GET /v1/cameras`` and ``GET /v1/workers`` every 50 ms until the other worker's own
heartbeat metrics show the camera streaming with frames processed since the signal. A fresh
worker (new WORKER_ID) then becomes the spare of the next trial.

The lease and the frames are timed apart: "released" when the camera's lease holder becomes
null or changes, "assigned" from the lease's assigned_at, "first frame" (the figure) when the
spare started processing its first frame of the camera (its frame log), and "reported" when
the spare's heartbeat shows it.
A worker that holds the lease for 10 s without reporting a stream is an incident: the trial
does not complete, the worker is killed so its lease lapses, and one more trial of the same
kind is run (at most --trials more in all).

Most trials send SIGKILL: the dead process's presence stream breaks, and the control plane
expires it a presence grace (2 s) later; the spare, waiting on a long-poll camera request,
is woken by the release. A few send SIGTERM: the worker stops its stream, signals shutdown
and deregisters, which frees the camera at once: the baseline. The ratio of the two medians
is what a crash costs over a clean stop.

    .venv/bin/python bench/failover.py
    .venv/bin/python bench/failover.py --trials 20 --graceful-trials 5 --json failover.json

Every step is bounded (60 s to start the control plane, 90 s to get a streaming holder and a
spare, 30 s for a failover), and every process the script starts is killed on exit, on an
error, on Ctrl-C and on SIGTERM (and, on Linux, when the script itself is killed).
"""

from __future__ import annotations

import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from benchlib import cli
from benchlib.cpu import load_average, machine_info
from benchlib.fleet import (
    EXIT_TIMEOUT,
    POLL,
    Fleet,
    Incident,
    WorkerView,
    incident,
    observe,
    ready_pair,
    stuck,
)
from benchlib.processes import BenchError
from benchlib.stats import ratio, spread
from benchlib.targets import Target, Targets
from facefleet.demo.video import make_demo_video
from facefleet.worker.pipeline.source import FrameSource

TARGETS = (
    Target("kill9_median_s", "kill -9 to the spare's first frame, median", "<=", 2.5, " s"),
    Target("kill9_max_s", "kill -9 to the spare's first frame, max", "<=", 4.0, " s"),
    Target("graceful_median_s", "SIGTERM to the spare's first frame, median", "<=", 0.3, " s"),
)
# The defaults this benchmark is about; the workers' registration log is checked against them.
HEARTBEAT_INTERVAL = 2.0
LEASE_TTL = 6.0
REAPER_PERIOD = 0.5
RETRY_AFTER = 2.0
CAMERA_FPS = 5.0
SETUP_TIMEOUT = 60.0
FAILOVER_TIMEOUT = 30.0
FRAME_LOG_WAIT = 2.0

Mode = Literal["kill9", "graceful"]


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
    first_frame: float | None  # the spare's first frame of the camera, from its frame log
    reported: float | None  # the spare's heartbeat shows new frames (polled): the figure
    frames_at_report: int
    exited: float | None  # the victim process was gone (graceful: its own exit)
    exit_code: int | None


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
        if stuck(view, spare):  # killed, so that its lease lapses for the next trial
            incidents.append(incident(fleet, view, f"trial {index}", spare, camera_id))
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
    start = None if reporter is None else first_frame(fleet, spare, camera_id, killed_wall)
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


def first_frame(fleet: Fleet, worker_id: str, camera_id: int, after: float) -> float | None:
    """The worker's first frame of the camera after ``after``: its frame log has the line once
    the frame is processed, which may be just after its heartbeat counted the frame."""
    deadline = time.monotonic() + FRAME_LOG_WAIT
    while (start := fleet.first_frame_after(worker_id, camera_id, after)) is None:
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL)
    return start


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


def cell(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.2f}"


def print_trial(trial: Trial) -> None:
    print(
        f"{trial.index:3d}  {trial.mode:8s}  {trial.victim:>8s} -> {trial.spare:<8s}"
        f"  {cell(trial.heartbeat_age)}   {cell(trial.released)}    {cell(trial.assigned)}"
        f"      {cell(trial.first_frame)}    {cell(trial.reported)}"
        + ("" if trial.completed else "   did not complete: the spare never streamed"),
        flush=True,
    )


def component(trials: list[Trial], pick: Callable[[Trial], float | None]) -> dict[str, float]:
    return spread([v for v in (pick(t) for t in trials) if v is not None])


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
    if kill9 and graceful:
        out["ratio_kill9_to_graceful"] = ratio(kill9["median"], graceful["median"])
        k_first = out["kill9"]["first_frame"]
        g_first = out["graceful"]["first_frame"]
        if k_first and g_first:
            out["ratio_kill9_to_graceful_first_frame"] = ratio(k_first["median"], g_first["median"])
    return out


def print_summary(summary: dict[str, Any], targets: Targets) -> None:
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
            ("first frame on the spare", "first_frame"),
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
    kill9 = summary.get("kill9", {}).get("first_frame", {})
    graceful = summary.get("graceful", {}).get("first_frame", {})
    median, most = kill9.get("median"), kill9.get("max")
    print(f"\nkill -9 to the spare's first frame, median {_s(median)} s", end=" ")
    print(f"({targets.check('kill9_median_s', median)})")
    print(f"kill -9 to the spare's first frame, max {_s(most)} s", end=" ")
    print(f"({targets.check('kill9_max_s', most)})")
    calm = graceful.get("median")
    print(f"SIGTERM to the spare's first frame, median {_s(calm)} s", end=" ")
    print(f"({targets.check('graceful_median_s', calm)})")
    if "ratio_kill9_to_graceful" in summary:
        print(
            f"kill -9 / SIGTERM, the baseline (medians): "
            f"{summary['ratio_kill9_to_graceful']:.2f}x until reported"
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


def _s(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.2f}"


def add_camera(admin: httpx.Client, url: str) -> int:
    created = admin.post(
        "/v1/cameras",
        json={"name": "failover-cam", "source_url": url, "target_fps": CAMERA_FPS},
    )
    if created.status_code != 201:
        raise BenchError(f"could not add the camera: {created.text}")
    camera_id: int = created.json()["id"]
    return camera_id


def run_trials(
    fleet: Fleet, modes: deque[Mode], retries: int, rng: random.Random, url: str, opens: list[float]
) -> tuple[list[Trial], list[Incident]]:
    """The trials in order; one that does not complete is run again (at most ``retries``)."""
    trials: list[Trial] = []
    incidents: list[Incident] = []
    fleet.start_control()
    headers = {"Authorization": f"Bearer {fleet.keys().admin}"}
    with httpx.Client(base_url=fleet.url, headers=headers, timeout=5) as admin:
        camera_id = add_camera(admin, url)
        names = (f"w{n:02d}" for n in range(1, 1000))
        pair = ready_pair(fleet, admin, camera_id, names, incidents, "setup")
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
        while modes:
            mode = modes.popleft()
            index = len(trials) + 1
            if trials:
                when = f"before trial {index}"
                pair = ready_pair(fleet, admin, camera_id, names, incidents, when)
            trial = run_trial(fleet, admin, camera_id, index, mode, pair, rng, incidents)
            trials.append(trial)
            print_trial(trial)
            if not trial.completed and retries > 0:
                retries -= 1  # another trial of that mode, so the count holds
                modes.append(mode)
    return trials, incidents


def run(trials: int, graceful: int, seed: int | None, targets: Targets) -> dict[str, Any]:
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="facefleet-failover-") as tmp:
        workdir = Path(tmp)
        video = make_demo_video(workdir / "demo.avi", seconds=10, fps=15)
        url = f"file://{video}"
        opens = stream_open_times(url)
        fleet = Fleet(workdir)
        modes = deque(schedule(trials, graceful))
        try:
            done, incidents = run_trials(fleet, modes, trials, random.Random(seed), url, opens)
        except BenchError:
            fleet.close()
            for child in fleet.children:
                print(f"--- {child.name} (last lines)\n{child.tail(1500)}", file=sys.stderr)
            raise
        finally:
            fleet.close()
        problems = fleet.log_problems()
    summary = report(done)
    summary["log_problems"] = problems
    summary["incidents"] = [asdict(i) for i in incidents]
    print_summary(summary, targets)
    return {
        "settings": {
            "heartbeat_interval": HEARTBEAT_INTERVAL,
            "lease_ttl": LEASE_TTL,
            "reaper_period": REAPER_PERIOD,
            "retry_after": RETRY_AFTER,
            "camera_fps": CAMERA_FPS,
            "poll_seconds": POLL,
            "seed": seed,
        },
        "machine": {**machine_info(), "load_before": load_before, "load_after": load_average()},
        "stream_open_seconds": opens,
        "trials": [asdict(t) for t in done],
        "summary": summary,
    }


def main(argv: list[str] | None = None) -> int:
    targets = Targets(*TARGETS)
    parser = cli.parser(__doc__, targets, "2 kill -9 trials and 1 SIGTERM trial")
    parser.add_argument("--trials", type=int, help="kill -9 trials (default 10)")
    parser.add_argument("--graceful-trials", type=int, help="SIGTERM trials, the baseline (4)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill timing")
    args = cli.parse(parser, targets, argv)
    trials = args.trials if args.trials is not None else (2 if args.quick else 10)
    graceful = args.graceful_trials
    graceful = graceful if graceful is not None else (1 if args.quick else 4)
    if trials < 1 or graceful < 0:
        parser.error("need --trials >= 1 and --graceful-trials >= 0")
    results = run(trials, graceful, args.seed, targets)
    return cli.finish(targets, results, args.json_path)


if __name__ == "__main__":
    sys.exit(cli.run(main))

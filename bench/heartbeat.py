"""Heartbeat benchmark of the facefleet control plane, on loopback only.

Two phases; every server is a separate process started by the same uvicorn command line:

* throughput: workers holding a camera lease each send heartbeats as fast as a closed loop of
  ``--concurrency`` in-flight requests allows, for ``--duration`` seconds; the same client and
  payload then hit a bare Starlette endpoint. Rounds alternate the two servers, and the ratio
  facefleet/bare of the median rates is reported.
* scale: ``--workers`` simulated workers (a camera lease each) heartbeat every ``--interval``
  seconds, spread evenly, for ``--scale-duration`` seconds; heartbeat latency is reported and
  the run checks that no worker went suspect or offline.

Load generators are separate processes. On a small machine they compete with the server for
CPU, so the CPU time of the server, of the generators and of everything else is measured and
printed next to every rate. ``--client raw`` swaps httpx for a minimal HTTP/1.1 client that
needs far less CPU, to see the server's own limit.

    .venv/bin/python bench/heartbeat.py --quick
    .venv/bin/python bench/heartbeat.py --json heartbeat.json
    .venv/bin/python bench/heartbeat.py --client raw
"""

from __future__ import annotations

import asyncio
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from benchlib import cli
from benchlib.api import add_cameras, enroll_many, worker_id_of
from benchlib.baselines import HEARTBEAT_APP
from benchlib.clients import ClientKind, Endpoint, speed_up_httpcore
from benchlib.cpu import describe, machine_info
from benchlib.drive import Drive, cpu_shares, drive, pinned_cpus, summarize_rounds
from benchlib.fleet_state import describe_fleet, fleet_checks, recorded_events
from benchlib.load import generator_specs
from benchlib.processes import HOST, BenchError, free_port
from benchlib.prometheus import CONTROL_PLANE, control_plane_view, scrape_histograms, view_rows
from benchlib.report import Column, Table, aligned, fmt, pct
from benchlib.servers import (
    ANSWERS,
    FACEFLEET_APP,
    Server,
    facefleet_env,
    sqlite_url,
    start_server,
    uvicorn_argv,
)
from benchlib.stats import latency_summary, merge_counts, ratio
from benchlib.targets import Target, Targets

SERVER_FLAGS = ("--log-level", "warning")
# Above this, a closed-loop generator spends most of its time on the client stack rather than
# waiting for the server, and the rate measures the client.
SATURATED = 0.9
PACKAGES = ("facefleet", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "httpx")
TARGETS = (
    Target("throughput_ratio", "throughput facefleet/bare (median rates)", ">=", 0.5),
    Target("p99_ratio", "throughput p99 latency facefleet/bare (pooled)", "<=", 3.0),
    Target("scale_p99_ms", "scale heartbeat p99 at the client", "<", 50.0, " ms", ".1f"),
    Target(
        "scale_transitions",
        "scale suspect/offline transitions and workers not online",
        "<=",
        0.0,
        spec=".0f",
    ),
)


@dataclass(frozen=True)
class Options:
    workers: int
    scale_duration: float
    interval: float
    lease_ttl: float
    duration: float
    concurrency: int
    scale_connections: int
    throughput_workers: int
    generators: int
    scale_generators: int
    setup_concurrency: int
    rounds: int
    setup_timeout: float
    client: ClientKind
    pin: bool
    phases: tuple[str, ...]
    json_path: Path | None
    quick: bool


# Settings whose defaults --quick changes.
FULL = {"workers": 10_000, "throughput_workers": 256, "rounds": 3}
QUICK = {"workers": 400, "throughput_workers": 64, "rounds": 1}
FULL_SECONDS = {"scale_duration": 30.0, "duration": 10.0}
QUICK_SECONDS = {"scale_duration": 10.0, "duration": 3.0}


# (option, type, default, help); None takes the default of FULL or, with --quick, QUICK.
NUMBERS: list[tuple[str, type[float], float | None, str]] = [
    ("--workers", int, None, "simulated workers in the scale phase (10000)"),
    ("--scale-duration", float, None, "measured seconds of the scale phase (30)"),
    ("--duration", float, None, "measured seconds of each throughput run (10)"),
    ("--concurrency", int, 32, "heartbeats in flight (connections), throughput"),
    ("--scale-connections", int, 64, "connections per generator process, scale"),
    ("--throughput-workers", int, None, "workers the throughput run cycles through (256)"),
    ("--generators", int, 1, "load generator processes, throughput"),
    ("--scale-generators", int, 2, "load generator processes, scale"),
    ("--setup-concurrency", int, 8, "concurrent registrations and camera creations in setup"),
    ("--rounds", int, None, "throughput rounds, alternating the two servers (3)"),
    ("--setup-timeout", float, 900.0, "give the scale phase up if not enrolled after this many s"),
    ("--interval", float, 5.0, "heartbeat interval, s"),
    ("--lease-ttl", float, 15.0, "lease TTL, s"),
]


def parse_args(argv: list[str] | None, targets: Targets) -> Options:
    p = cli.parser(__doc__, targets, "400 workers, 3 s runs, one round; under a minute")
    for flag, kind, default, text in NUMBERS:
        shown = "" if default is None else f" ({default:g})"
        p.add_argument(flag, type=kind, default=default, help=text + shown)
    add = p.add_argument
    add(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="heartbeat client: httpx.AsyncClient, or a minimal keep-alive HTTP/1.1 client "
        "that costs the generator far less CPU per request (httpx)",
    )
    add("--pin", action="store_true", help="server on CPU 0, the generators on the other CPUs")
    add("--only", choices=["throughput", "scale"], help="run one phase instead of both")
    ns = cli.parse(p, targets, argv)
    values: dict[str, Any] = {f.name: getattr(ns, f.name, None) for f in fields(Options)}
    preset = {**QUICK, **QUICK_SECONDS} if ns.quick else {**FULL, **FULL_SECONDS}
    for name, default in preset.items():
        values[name] = default if values[name] is None else values[name]
    values["phases"] = (ns.only,) if ns.only else ("throughput", "scale")
    opts = Options(**values)
    counts = (opts.workers, opts.concurrency, opts.scale_connections, opts.throughput_workers)
    if (
        min(*counts, opts.generators, opts.scale_generators, opts.setup_concurrency, opts.rounds)
        < 1
    ):
        p.error("counts must be at least 1")
    if opts.generators > opts.concurrency:
        p.error("--generators cannot exceed --concurrency")
    if opts.lease_ttl <= opts.interval:
        p.error("--lease-ttl must be longer than --interval")
    return opts


def serve(app: str, data_dir: Path, opts: Options, cpus: set[int] | None) -> Server:
    """facefleet or the bare app, by one command line; the settings only facefleet reads."""
    port = free_port()
    env = facefleet_env(
        data_dir,
        database_url=sqlite_url(data_dir / "bench.db"),
        heartbeat_interval=str(opts.interval),
        lease_ttl=str(opts.lease_ttl),
        bootstrap_default_tenant="true",
    )
    name = "facefleet" if app == FACEFLEET_APP else "bare"
    argv = uvicorn_argv(app, port, *SERVER_FLAGS)
    return start_server(name, argv, port=port, env=env, cwd=data_dir, probe=ANSWERS, cpus=cpus)


# -- phase 1: throughput -----------------------------------------------------------------------


def closed_run(
    server: Server, opts: Options, credentials: list[tuple[str, str]], worker_key: str
) -> Drive:
    endpoint = Endpoint(opts.client, server.base_url, worker_key, pinned_cpus(opts.pin)[1])
    specs = generator_specs(
        endpoint,
        "closed",
        opts.generators,
        opts.concurrency,
        opts.duration,
        credentials=credentials,
    )
    return drive(server, specs, duration=opts.duration, settle=2.0, ready_timeout=60.0)


def phase_throughput(opts: Options, tmp: Path, targets: Targets) -> dict[str, Any]:
    server_cpus, _ = pinned_cpus(opts.pin)
    n = opts.throughput_workers
    ff_runs: list[Drive] = []
    bare_runs: list[Drive] = []
    # Rounds alternate the two servers, so a slow spell of a shared machine hits both. Each
    # facefleet round gets a fresh server: a fleet left silent would be reaped meanwhile.
    for r in range(opts.rounds):
        with serve(FACEFLEET_APP, tmp / f"throughput-{r}", opts, server_cpus) as server:
            keys = server.keys()
            cam_s = asyncio.run(add_cameras(server.base_url, keys.admin, n, opts.setup_concurrency))
            creds, failures, enrol_s = asyncio.run(
                enroll_many(server.base_url, keys.worker, list(range(n)), opts.setup_concurrency)
            )
            if failures:
                raise BenchError(f"setup failed: {dict(failures)}")
            ff_runs.append(closed_run(server, opts, creds, keys.worker))
        with serve(HEARTBEAT_APP, tmp / f"bare-{r}", opts, server_cpus) as bare:
            # The headers and body real workers send, with made-up identities.
            fake = [(worker_id_of(i), f"token-{i}") for i in range(n)]
            bare_runs.append(closed_run(bare, opts, fake, "ff_worker_bench"))
        ff_rate = sum(x.ok for x in ff_runs[-1].results) / opts.duration
        bare_rate = sum(x.ok for x in bare_runs[-1].results) / opts.duration
        print(
            f"  round {r + 1}/{opts.rounds}: setup {cam_s + enrol_s:.1f}s, "
            f"facefleet {ff_rate:.0f} req/s, bare {bare_rate:.0f} req/s"
        )
    facefleet = summarize_rounds(ff_runs, opts.duration)
    baseline = summarize_rounds(bare_runs, opts.duration)
    rate_ratio = ratio(facefleet["requests_per_s"], baseline["requests_per_s"])
    p99_ratio = ratio(facefleet["latency"]["p99_ms"], baseline["latency"]["p99_ms"])
    return {
        "workers": n,
        "duration_s": opts.duration,
        "rounds": opts.rounds,
        "concurrency": opts.concurrency,
        "generators": opts.generators,
        "client": opts.client,
        "facefleet": facefleet,
        "bare": baseline,
        "ratio": rate_ratio,
        "rounds_ratio": [
            ratio(f, b)
            for f, b in zip(facefleet["rounds_per_s"], baseline["rounds_per_s"], strict=True)
        ],
        "p99_ratio": p99_ratio,
        "cpu_cost_ratio": ratio(
            baseline["server_cpu_us_per_request"], facefleet["server_cpu_us_per_request"]
        ),
        "target": targets.check("throughput_ratio", rate_ratio),
        "target_p99": targets.check("p99_ratio", p99_ratio),
    }


# -- phase 2: fleet scale ----------------------------------------------------------------------


def phase_scale(opts: Options, tmp: Path, targets: Targets) -> dict[str, Any]:
    server_cpus, gen_cpus = pinned_cpus(opts.pin)
    n, g = opts.workers, opts.scale_generators
    data_dir = tmp / "scale"
    with serve(FACEFLEET_APP, data_dir, opts, server_cpus) as server:
        keys = server.keys()
        cam_s = asyncio.run(add_cameras(server.base_url, keys.admin, n, opts.setup_concurrency))
        print(f"  setup: {n} cameras in {cam_s:.1f}s; enrolling {n} workers ...")
        endpoint = Endpoint(opts.client, server.base_url, keys.worker, gen_cpus)
        specs = generator_specs(
            endpoint,
            "paced",
            g,
            opts.scale_connections,
            opts.scale_duration,
            workers=n,
            interval=opts.interval,
            setup_concurrency=opts.setup_concurrency,
            setup_timeout=opts.setup_timeout,
        )
        run = drive(
            server,
            specs,
            duration=opts.scale_duration,
            # One full interval after the last enrolment every worker is on its slot schedule.
            settle=opts.interval + 1.0,
            ready_timeout=opts.setup_timeout,
            before_window=lambda: scrape_histograms(server.base_url, CONTROL_PLANE),
            at_window_end=lambda: fleet_checks(server.base_url, keys.admin),
        )
        completed = not math.isinf(run.window_start)
        enrol_s = max((r.setup_seconds for r in run.ready), default=0.0)
        if completed:
            print(f"  enrolled in {enrol_s:.1f}s; measured from {opts.interval + 1:g}s later")
    if completed:
        window = (run.window_start, run.window_start + opts.scale_duration)
    else:
        enrol_s = opts.setup_timeout
        window = (time.time() + 1e6,) * 2  # every event then counts as setup
    events = recorded_events(data_dir / "bench.db", *window)
    results = run.results
    stats_workers: dict[str, int] = run.checks["stats"]["workers"]

    # Each check sees transitions the others can miss: the history keeps recovered suspects,
    # the API shows current states, a 404 shows a worker the reaper dropped.
    def history(kind: str, part: str | None = None) -> int:
        parts = events.get(kind, {})
        return parts.get(part, 0) if part else sum(parts.values())

    spurious = {
        "history_suspect": history("suspect"),
        "history_offline": history("offline"),
        "history_suspect_in_window": history("suspect", "window"),
        "history_offline_in_window": history("offline", "window"),
        "stats_suspect": stats_workers.get("suspect", 0),
        "stats_offline": stats_workers.get("offline", 0),
        "listed_suspect": run.checks["listed"]["suspect"],
        "listed_offline": run.checks["listed"]["offline"],
        "lost_workers": sum(r.lost for r in results),
    }
    not_online = n - stats_workers.get("online", 0)
    latency = latency_summary([v for r in results for v in r.latencies_ms])
    return {
        "completed": completed,
        "workers": n,
        "enrolled": sum(r.enrolled for r in results),
        "enrol_failures": merge_counts(r.failures for r in run.ready),
        "generators": g,
        "client": opts.client,
        "interval_s": opts.interval,
        "lease_ttl_s": opts.lease_ttl,
        "duration_s": opts.scale_duration,
        "setup": {"cameras_s": cam_s, "enrol_s": enrol_s},
        "offered_per_s": n / opts.interval,
        "sent_per_s": sum(r.sent for r in results) / opts.scale_duration,
        "ok_per_s": sum(r.ok for r in results) / opts.scale_duration,
        "errors": merge_counts(r.errors for r in results),
        "errors_total": merge_counts(r.errors_total for r in results),
        "latency": latency,
        "send_lag": latency_summary([v for r in results for v in r.lag_ms]),
        "skipped_slots": sum(r.skipped for r in results),
        "max_gap_s": max((r.max_gap for r in results), default=0.0),
        "max_gap_window_s": max((r.max_gap_window for r in results), default=0.0),
        "suspect_after_s": opts.interval * 2,
        "cpu": cpu_shares(run, opts.scale_duration),
        "server_view": control_plane_view(run.checks["baseline"], run.checks["server_view"])
        if completed and run.checks["baseline"]
        else {},
        "checks": run.checks,
        "events": events,
        "spurious": spurious,
        "not_online": not_online,
        "target_p99": targets.check("scale_p99_ms", latency["p99_ms"] if completed else None),
        "target_transitions": targets.check(
            "scale_transitions", sum(spurious.values()) + not_online if completed else None
        ),
    }


# -- report -------------------------------------------------------------------------------------

THROUGHPUT_TABLE = Table(
    Column("server", 15),
    Column("req/s", 7, ".0f"),
    Column("p50 ms", 8),
    Column("p99 ms", 8),
    Column("errors", 7, "d"),
    Column("server CPU", 11),
    Column("gen CPU", 8),
    Column("other CPU", 10),
    Column("server us/req", 14, ".0f"),
)


def print_throughput(tp: dict[str, Any]) -> None:
    print(
        f"\nHeartbeat throughput: closed loop, {tp['client']} client, {tp['concurrency']} in "
        f"flight, {tp['generators']} generator process(es), {tp['workers']} workers, "
        f"{tp['rounds']} round(s) of {tp['duration_s']:g} s per server"
    )
    print(THROUGHPUT_TABLE.header())
    for name, run in (("facefleet", tp["facefleet"]), ("bare Starlette", tp["bare"])):
        cpu, lat = run["cpu"], run["latency"]
        print(
            THROUGHPUT_TABLE.row(
                *(name, run["requests_per_s"], lat["p50_ms"], lat["p99_ms"]),
                *(sum(run["errors"].values()), pct(cpu["server"]), pct(cpu["generators"])),
                *(pct(cpu["other"]), run["server_cpu_us_per_request"]),
            )
        )
    rounds = ", ".join(fmt(r, ".2f") for r in tp["rounds_ratio"])
    print(
        f"ratio facefleet/bare (median rates): {fmt(tp['ratio'], '.2f')} ({tp['target']}); "
        f"per round: {rounds}"
    )
    print(
        f"ratio facefleet/bare of the pooled p99 latencies: {fmt(tp['p99_ratio'], '.2f')} "
        f"({tp['target_p99']})"
    )
    print(
        f"server CPU per request, bare/facefleet: {fmt(tp['cpu_cost_ratio'], '.2f')} "
        "(the ratio a client of unlimited speed would measure)"
    )
    print("CPU columns: cores in use; 100% = one core. 'other' = the rest of the machine.")
    for name in ("facefleet", "bare"):
        cpu = tp[name]["cpu"]
        per_process = cpu["generators"] / tp["generators"]
        if per_process >= SATURATED and (cpu["server"] or 0) < SATURATED:
            print(
                f"note: against {name} each generator process was CPU-bound "
                f"({pct(per_process)}) while the server used {pct(cpu['server'])}: "
                "that rate is the client's limit, not the server's."
            )


def print_scale(sc: dict[str, Any]) -> None:
    print(
        f"\nFleet scale: {sc['workers']} workers, heartbeat every {sc['interval_s']:g} s, "
        f"lease TTL {sc['lease_ttl_s']:g} s, {sc['duration_s']:.0f} s window, "
        f"{sc['generators']} generator process(es), {sc['client']} client"
    )
    print(
        f"setup: cameras {sc['setup']['cameras_s']:.1f} s, enrolment (register + camera "
        f"request) {sc['setup']['enrol_s']:.1f} s, {sc['enrolled']} enrolled"
        + (f", failures {sc['enrol_failures']}" if sc["enrol_failures"] else "")
    )
    lat, lag, view = sc["latency"], sc["send_lag"], sc["server_view"]
    gap = f"{sc['max_gap_s']:.2f} s over the run (suspect after {sc['suspect_after_s']:g} s)"
    rows = [("longest heartbeat gap", gap)]
    if sc["completed"]:
        rows = [
            ("offered rate", f"{sc['offered_per_s']:.0f} req/s"),
            ("sent rate", f"{sc['sent_per_s']:.0f} req/s"),
            ("200 OK rate", f"{sc['ok_per_s']:.0f} req/s"),
            ("errors in window", str(sc["errors"] or 0)),
            ("latency p50", f"{fmt(lat['p50_ms'], '.1f')} ms"),
            ("latency p99", f"{fmt(lat['p99_ms'], '.1f')} ms ({sc['target_p99']})"),
            ("latency max", f"{fmt(lat['max_ms'], '.1f')} ms"),
            ("send lag p99 (generator late)", f"{fmt(lag['p99_ms'], '.1f')} ms"),
            ("skipped slots", str(sc["skipped_slots"])),
            ("longest heartbeat gap", f"{sc['max_gap_window_s']:.2f} s in the window, {gap}"),
            ("server CPU", pct(sc["cpu"]["server"])),
            ("generators CPU", pct(sc["cpu"]["generators"])),
            ("other processes CPU", pct(sc["cpu"]["other"])),
        ]
    else:
        print(
            f"NOT MEASURED: only {sc['enrolled']} of {sc['workers']} workers were enrolled "
            f"after {sc['setup']['enrol_s']:.0f} s; the state of the fleet at that point:"
        )
    rows += view_rows(view)
    print(aligned(rows))
    print(describe_fleet(sc["checks"], sc["events"]))
    print(f"workers lost (heartbeat answered 404): {sc['spurious']['lost_workers']}")
    print(
        f"suspect/offline transitions {sum(sc['spurious'].values())}, workers not online "
        f"{sc['not_online']} ({sc['target_transitions']})"
    )
    if sc["completed"] and sc["sent_per_s"] < 0.98 * sc["offered_per_s"]:
        print(
            f"note: the generators offered {sc['sent_per_s']:.0f} req/s, short of the "
            f"{sc['offered_per_s']:.0f} req/s the fleet should send"
        )


def main(argv: list[str] | None = None) -> int:
    targets = Targets(*TARGETS)
    opts = parse_args(argv, targets)
    speed_up_httpcore()
    info = machine_info(PACKAGES)
    print(
        f"facefleet heartbeat benchmark on {describe(info)}; server and load generators "
        "share these CPUs"
        + (", server pinned to the first" if opts.pin and info["cpus"] > 1 else "")
    )
    report: dict[str, Any] = {
        "machine": info,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "server_command": [
            *("python", "-m", "uvicorn", "<app>", "--factory", "--app-dir", "bench"),
            *("--host", HOST, "--port", "<free port>", *SERVER_FLAGS),
        ],
    }
    with tempfile.TemporaryDirectory(prefix="facefleet-bench-") as tmp:
        if "throughput" in opts.phases:
            print("\n[throughput]")
            report["throughput"] = phase_throughput(opts, Path(tmp), targets)
        if "scale" in opts.phases:
            print("\n[scale]")
            report["scale"] = phase_scale(opts, Path(tmp), targets)
    if "throughput" in report:
        print_throughput(report["throughput"])
    if "scale" in report:
        print_scale(report["scale"])
    return cli.finish(targets, report, opts.json_path)


if __name__ == "__main__":
    sys.exit(cli.run(main))

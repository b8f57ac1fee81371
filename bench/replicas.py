"""Replicas benchmark: heartbeat throughput and camera-assignment latency of the control
plane with one and with two replicas on PostgreSQL + Redis, against the embedded mode
(SQLite + in-process hot store) measured in the same run, printed as ratios.

Every configuration gets fresh storage (a new SQLite file; a new PostgreSQL database and
a new Redis key prefix, both removed afterwards) and its replicas are started with the same
uvicorn command. The load comes from separate generator processes:

* throughput: registered workers send heartbeats as fast as ``--concurrency`` in-flight
  requests allow, for ``--duration`` seconds, each request to the next replica in turn;
* assignment: ``--cameras`` workers each ask for a camera, one request at a time (the
  latency of one assignment transaction) and then all at once (under contention), and
  release them again, for ``--rounds`` rounds.

On a small machine the servers, PostgreSQL, Redis and the generators share the same cores:
CPU seconds of the replicas are printed next to every rate.

    .venv/bin/python bench/replicas.py --quick
    .venv/bin/python bench/replicas.py --json replicas.json
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchlib import cli
from benchlib.api import add_cameras, register_many, release_camera, request_camera
from benchlib.clients import HEARTBEAT_METRICS, worker_headers
from benchlib.cpu import describe, machine_info
from benchlib.processes import BenchError, free_port
from benchlib.servers import FACEFLEET_APP, READY, Server, facefleet_env, start_server, uvicorn_argv
from benchlib.stats import percentile, ratio
from benchlib.storage import Kind, storage
from benchlib.targets import Target, Targets

Credentials = list[tuple[str, str]]  # (worker_id, session token)
CONFIGS: list[tuple[str, Kind, int]] = [
    ("embedded (SQLite + memory)", "embedded", 1),
    ("PostgreSQL + Redis", "shared", 1),
    ("PostgreSQL + Redis", "shared", 2),
]
# docs/performance.md states no performance target for replicas: by default a run fails only
# when a configuration answers no heartbeat; the ratios take a target with --target.
TARGETS = (
    Target("heartbeats", "heartbeats/s of the slowest configuration", ">", 0.0, " /s", ".0f"),
    Target("pg_ratio", "heartbeats/s, PostgreSQL + Redis (1 replica) / embedded", ">=", None),
    Target("two_replicas_ratio", "heartbeats/s, two replicas / one (PostgreSQL)", ">=", None),
)


@dataclass(frozen=True)
class Options:
    duration: float
    warmup: float
    concurrency: int
    generators: int
    workers: int
    cameras: int
    rounds: int
    repeat: int
    json_path: Path | None


def parse_args(argv: list[str] | None, targets: Targets) -> Options:
    p = cli.parser(__doc__, targets, "3 s of heartbeats after 1 s of warm-up, 2 rounds")
    p.add_argument("--duration", type=float, help="seconds of heartbeats per configuration")
    p.add_argument("--concurrency", type=int, default=32, help="heartbeats in flight")
    p.add_argument("--generators", type=int, default=2, help="load generator processes")
    p.add_argument("--workers", type=int, default=200, help="workers sending heartbeats")
    p.add_argument("--cameras", type=int, default=16, help="cameras (and workers) assigned")
    p.add_argument("--rounds", type=int, help="assignment rounds")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the configurations this many times in turn and report medians",
    )
    ns = cli.parse(p, targets, argv)
    return Options(
        duration=ns.duration or (3.0 if ns.quick else 15.0),
        warmup=1.0 if ns.quick else 3.0,
        concurrency=ns.concurrency,
        generators=ns.generators,
        workers=ns.workers,
        cameras=ns.cameras,
        rounds=ns.rounds or (2 if ns.quick else 8),
        repeat=max(1, ns.repeat),
        json_path=ns.json_path,
    )


def start_replica(workdir: Path, settings: dict[str, str], index: int) -> Server:
    port = free_port()
    env = facefleet_env(
        workdir / "data",
        **settings,
        bootstrap_default_tenant="true" if index == 0 else "false",
        # Long enough that no worker goes suspect while the generators hog the cores.
        lease_ttl="60",
        heartbeat_interval="10",
    )
    argv = uvicorn_argv(FACEFLEET_APP, port, "--no-access-log", "--log-level", "warning")
    name = f"replica-{index}"
    data_dir = workdir / "data"
    return start_server(name, argv, port=port, env=env, cwd=workdir, probe=READY, data_dir=data_dir)


# -- the load -------------------------------------------------------------------------------


async def _heartbeats(
    urls: list[str],
    key: str,
    workers: Credentials,
    concurrency: int,
    warmup: float,
    duration: float,
) -> dict[str, Any]:
    latencies: list[float] = []
    counted = 0
    answered = 0  # warm-up included, for the CPU cost per heartbeat
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def loop(slot: int) -> None:
            nonlocal counted, answered, errors
            i = slot
            while True:
                worker_id, token = workers[i % len(workers)]
                url = urls[i % len(urls)]
                i += concurrency
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                resp = await http.post(
                    f"{url}/v1/workers/{worker_id}/heartbeat",
                    json=HEARTBEAT_METRICS,
                    headers=worker_headers(key, token),
                )
                done = time.perf_counter()
                answered += resp.status_code == 200
                if sent >= measure_from and done <= stop_at:
                    if resp.status_code == 200:
                        counted += 1
                        latencies.append((done - sent) * 1000)
                    else:
                        errors += 1

        await asyncio.gather(*(loop(slot) for slot in range(concurrency)))
    return {"count": counted, "answered": answered, "errors": errors, "latencies_ms": latencies}


def heartbeat_generator(args: dict[str, Any], out: Any) -> None:
    """One load generator process (spawned): its own event loop and connections."""
    out.put(asyncio.run(_heartbeats(**args)))


async def assignment_rounds(
    urls: list[str], key: str, workers: Credentials, rounds: int
) -> dict[str, list[float]]:
    """Latency of POST camera/request that gets a camera: one at a time, then all at once."""
    sequential: list[float] = []
    concurrent: list[float] = []
    async with httpx.AsyncClient(timeout=30) as http:

        async def request(i: int, worker: tuple[str, str]) -> tuple[float, dict[str, Any]]:
            sent = time.perf_counter()
            got = await request_camera(http, urls[i % len(urls)], key, *worker)
            elapsed = (time.perf_counter() - sent) * 1000
            if got is None:
                raise BenchError(f"{worker[0]} got no camera: every worker must get one")
            return elapsed, got

        async def release_all(granted: list[tuple[tuple[str, str], dict[str, Any]]]) -> None:
            for i, (worker, got) in enumerate(granted):
                await release_camera(http, urls[i % len(urls)], key, *worker, got)

        for _ in range(rounds):
            granted = []
            for i, worker in enumerate(workers):
                elapsed, got = await request(i, worker)
                sequential.append(elapsed)
                granted.append((worker, got))
            await release_all(granted)
            results = await asyncio.gather(*(request(i, w) for i, w in enumerate(workers)))
            concurrent.extend(elapsed for elapsed, _ in results)
            await release_all([(w, got) for w, (_, got) in zip(workers, results, strict=True)])
    return {"sequential": sequential, "concurrent": concurrent}


# -- one configuration ----------------------------------------------------------------------


@dataclass
class Result:
    name: str
    replicas: int
    heartbeats_per_s: float
    heartbeat_errors: int
    heartbeat_p50_ms: float
    heartbeat_p99_ms: float
    replica_cpu_s_per_1k_heartbeats: float
    assign_seq_p50_ms: float
    assign_seq_p95_ms: float
    assign_conc_p50_ms: float
    assign_conc_p95_ms: float
    extra: dict[str, Any] = field(default_factory=dict)


def run_config(name: str, kind: Kind, count: int, opts: Options) -> Result:
    with (
        tempfile.TemporaryDirectory(prefix="facefleet-bench-") as tmp,
        storage(kind, Path(tmp)) as settings,
    ):
        replicas: list[Server] = []
        try:
            for index in range(count):
                replicas.append(start_replica(Path(tmp), settings, index))
            return measure(name, replicas, opts)
        finally:
            for replica in replicas:
                replica.stop()


def replica_cpu(replicas: list[Server]) -> float:
    return sum(r.cpu() or 0.0 for r in replicas)


def measure(name: str, replicas: list[Server], opts: Options) -> Result:
    urls = [r.base_url for r in replicas]
    keys = replicas[0].keys()
    ids = [f"hb-{i:05d}" for i in range(opts.workers)]
    beaters = asyncio.run(register_many(urls, keys.worker, ids, capacity=1))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = []
    cpu_before = replica_cpu(replicas)
    for g in range(opts.generators):
        args = {
            "urls": urls,
            "key": keys.worker,
            "workers": beaters[g :: opts.generators],
            "concurrency": max(1, opts.concurrency // opts.generators),
            "warmup": opts.warmup,
            "duration": opts.duration,
        }
        proc = ctx.Process(target=heartbeat_generator, args=(args, queue))
        proc.start()
        procs.append(proc)
    results = [queue.get(timeout=opts.warmup + opts.duration + 120) for _ in procs]
    for proc in procs:
        proc.join(30)
    cpu_used = replica_cpu(replicas) - cpu_before
    answered = sum(r["answered"] for r in results)
    latencies = [v for r in results for v in r["latencies_ms"]]

    asyncio.run(add_cameras(urls[0], keys.admin, opts.cameras, concurrency=1))
    ids = [f"as-{i:05d}" for i in range(opts.cameras)]
    assigners = asyncio.run(register_many(urls, keys.worker, ids, capacity=1))
    assign = asyncio.run(assignment_rounds(urls, keys.worker, assigners, opts.rounds))
    return Result(
        name=name,
        replicas=len(replicas),
        heartbeats_per_s=sum(r["count"] for r in results) / opts.duration,
        heartbeat_errors=sum(r["errors"] for r in results),
        heartbeat_p50_ms=percentile(latencies, 50),
        heartbeat_p99_ms=percentile(latencies, 99),
        replica_cpu_s_per_1k_heartbeats=cpu_used / max(1, answered) * 1000,
        assign_seq_p50_ms=percentile(assign["sequential"], 50),
        assign_seq_p95_ms=percentile(assign["sequential"], 95),
        assign_conc_p50_ms=percentile(assign["concurrent"], 50),
        assign_conc_p95_ms=percentile(assign["concurrent"], 95),
        extra={"assign_samples": len(assign["sequential"]) + len(assign["concurrent"])},
    )


# -- report ---------------------------------------------------------------------------------


def median_result(runs: list[Result]) -> Result:
    """Each figure's median over the runs of one configuration."""
    first = runs[0]
    numbers = {
        name: statistics.median(getattr(r, name) for r in runs)
        for name, value in asdict(first).items()
        if isinstance(value, float)
    }
    return Result(
        name=first.name,
        replicas=first.replicas,
        heartbeat_errors=sum(r.heartbeat_errors for r in runs),
        extra={"runs": len(runs)},
        **numbers,
    )


def report(results: list[Result], opts: Options, targets: Targets) -> str:
    base = results[0]
    lines = [
        f"medians of {opts.repeat} run(s) per configuration; {opts.duration:.0f}s of "
        f"heartbeats at {opts.concurrency} in flight from {opts.generators} generator(s), "
        f"{opts.workers} workers; {opts.rounds} assignment rounds of {opts.cameras} cameras",
        "",
        "| configuration | replicas | heartbeats/s | vs embedded | p50 ms | p99 ms "
        "| replica CPU s / 1k beats | assign p50 ms (one at a time) | vs embedded "
        "| assign p50 ms (all at once) | vs embedded |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.replicas} | {r.heartbeats_per_s:.0f} "
            f"| {ratio(r.heartbeats_per_s, base.heartbeats_per_s):.2f} "
            f"| {r.heartbeat_p50_ms:.1f} | {r.heartbeat_p99_ms:.1f} "
            f"| {r.replica_cpu_s_per_1k_heartbeats:.2f} "
            f"| {r.assign_seq_p50_ms:.1f} "
            f"| {ratio(r.assign_seq_p50_ms, base.assign_seq_p50_ms):.2f} "
            f"| {r.assign_conc_p50_ms:.1f} "
            f"| {ratio(r.assign_conc_p50_ms, base.assign_conc_p50_ms):.2f} |"
        )
    one, two = results[1], results[2]
    pg = ratio(one.heartbeats_per_s, base.heartbeats_per_s)
    scaling = ratio(two.heartbeats_per_s, one.heartbeats_per_s)
    slowest = min(r.heartbeats_per_s for r in results)
    lines += [
        "",
        f"PostgreSQL + Redis (1 replica) / embedded: heartbeats {pg:.2f}x "
        f"({targets.check('pg_ratio', pg)})",
        f"two replicas / one replica (PostgreSQL + Redis): heartbeats {scaling:.2f}x "
        f"({targets.check('two_replicas_ratio', scaling)}), assignment latency one at a "
        f"time {ratio(two.assign_seq_p50_ms, one.assign_seq_p50_ms):.2f}x, all at once "
        f"{ratio(two.assign_conc_p50_ms, one.assign_conc_p50_ms):.2f}x",
        f"slowest configuration: {slowest:.0f} heartbeats/s "
        f"({targets.check('heartbeats', slowest)})",
    ]
    errors = sum(r.heartbeat_errors for r in results)
    if errors:
        lines.append(f"heartbeat errors: {errors}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    targets = Targets(*TARGETS)
    opts = parse_args(argv, targets)
    print(f"facefleet replicas benchmark on {describe(machine_info())}")
    runs: list[list[Result]] = [[] for _ in CONFIGS]
    # In turn, so load that comes and goes on the machine spreads over every configuration.
    for rep in range(opts.repeat):
        for (name, kind, count), done in zip(CONFIGS, runs, strict=True):
            print(
                f"[{rep + 1}/{opts.repeat}] measuring {name}, {count} replica(s) ...",
                file=sys.stderr,
                flush=True,
            )
            done.append(run_config(name, kind, count, opts))
    results = [median_result(done) for done in runs]
    print(report(results, opts, targets))
    payload = {
        "options": asdict(opts),
        "results": [asdict(r) for r in results],
        "runs": [[asdict(r) for r in done] for done in runs],
    }
    return cli.finish(targets, payload, opts.json_path)


if __name__ == "__main__":
    sys.exit(cli.run(main))

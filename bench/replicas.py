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

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

HOST = "127.0.0.1"
APP = "facefleet.api.app:create_app"
PG_ADMIN_URL = os.environ.get(
    "FACEFLEET_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FACEFLEET_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
HEARTBEAT_BODY = {"metrics": {"fps": 5.0, "frames_dropped": 0}}


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


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short run (a smoke test, not a result)")
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
    p.add_argument("--json", dest="json_path", type=Path, help="also write the results here")
    ns = p.parse_args(argv)
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


# -- measuring ------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# -- storage and servers --------------------------------------------------------------------


async def _pg_admin(sql: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def _delete_prefix(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


@contextlib.contextmanager
def storage(kind: str, workdir: Path) -> Iterator[dict[str, str]]:
    """Settings for a fresh database (and Redis prefix), removed afterwards."""
    if kind == "embedded":
        yield {"FACEFLEET_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}"}
        return
    name = f"facefleet_bench_{uuid.uuid4().hex[:12]}"
    prefix = f"facefleet-bench:{uuid.uuid4().hex[:12]}:"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield {
            "FACEFLEET_DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name,
            "FACEFLEET_REDIS_URL": REDIS_URL,
            "FACEFLEET_REDIS_PREFIX": prefix,
        }
    finally:
        asyncio.run(_delete_prefix(prefix))
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def start_replica(workdir: Path, settings: dict[str, str], index: int) -> Replica:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEFLEET_")}
    env.update(
        settings,
        FACEFLEET_DATA_DIR=str(workdir / "data"),
        FACEFLEET_BOOTSTRAP_DEFAULT_TENANT="true" if index == 0 else "false",
        # Long enough that no worker goes suspect while the generators hog the cores.
        FACEFLEET_LEASE_TTL="60",
        FACEFLEET_HEARTBEAT_INTERVAL="10",
    )
    port = free_port()
    log = (workdir / f"replica-{index}.log").open("ab")
    command = [sys.executable, "-m", "uvicorn", "--factory", APP, "--host", HOST]
    command += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"replica {index} exited; see {workdir / f'replica-{index}.log'}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://{HOST}:{port}/readyz", timeout=1).status_code == 200:
                return Replica(proc, port)
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"replica {index} did not become ready")
        time.sleep(0.1)


def stop(replicas: list[Replica]) -> None:
    for replica in replicas:
        if replica.proc.poll() is None:
            replica.proc.terminate()
    for replica in replicas:
        try:
            replica.proc.wait(30)
        except subprocess.TimeoutExpired:
            replica.proc.kill()


# -- the load -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerCreds:
    worker_id: str
    token: str


async def register_all(
    urls: list[str], key: str, prefix: str, count: int, capacity: int = 1
) -> list[WorkerCreds]:
    out: list[WorkerCreds] = []
    async with httpx.AsyncClient(timeout=30) as http:
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            async with sem:
                worker_id = f"{prefix}-{i:05d}"
                resp = await http.post(
                    f"{urls[i % len(urls)]}/v1/workers/register",
                    json={"worker_id": worker_id, "capacity": capacity},
                    headers={"Authorization": f"Bearer {key}"},
                )
                resp.raise_for_status()
                out.append(WorkerCreds(worker_id, resp.json()["session_token"]))

        await asyncio.gather(*(one(i) for i in range(count)))
    return sorted(out, key=lambda w: w.worker_id)


async def _heartbeats(
    urls: list[str],
    key: str,
    workers: list[WorkerCreds],
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
                worker = workers[i % len(workers)]
                url = urls[i % len(urls)]
                i += concurrency
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                resp = await http.post(
                    f"{url}/v1/workers/{worker.worker_id}/heartbeat",
                    json=HEARTBEAT_BODY,
                    headers={
                        "Authorization": f"Bearer {key}",
                        "X-Worker-Session": worker.token,
                    },
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
    return {
        "count": counted,
        "answered": answered,
        "errors": errors,
        "latencies_ms": latencies,
    }


def heartbeat_generator(args: dict[str, Any], out: Any) -> None:
    """One load generator process (spawned): its own event loop and connections."""
    workers = [WorkerCreds(**w) for w in args.pop("workers")]
    out.put(asyncio.run(_heartbeats(workers=workers, **args)))


async def assignment_rounds(
    urls: list[str], key: str, workers: list[WorkerCreds], rounds: int
) -> dict[str, list[float]]:
    """Latency of POST camera/request that gets a camera: one at a time, then all at once."""
    sequential: list[float] = []
    concurrent: list[float] = []
    async with httpx.AsyncClient(timeout=30) as http:

        def headers(worker: WorkerCreds) -> dict[str, str]:
            return {"Authorization": f"Bearer {key}", "X-Worker-Session": worker.token}

        async def request(i: int, worker: WorkerCreds) -> tuple[float, dict[str, Any]]:
            sent = time.perf_counter()
            resp = await http.post(
                f"{urls[i % len(urls)]}/v1/workers/{worker.worker_id}/camera/request",
                headers=headers(worker),
            )
            elapsed = (time.perf_counter() - sent) * 1000
            resp.raise_for_status()
            got: dict[str, Any] = resp.json()["assignment"]
            assert got is not None, "every worker must get a camera"
            return elapsed, got

        async def release_all(granted: list[tuple[WorkerCreds, dict[str, Any]]]) -> None:
            for i, (worker, got) in enumerate(granted):
                resp = await http.post(
                    f"{urls[i % len(urls)]}/v1/workers/{worker.worker_id}/camera/release",
                    json={"camera_id": got["camera_id"], "epoch": got["epoch"]},
                    headers=headers(worker),
                )
                resp.raise_for_status()

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


async def add_cameras(url: str, admin_key: str, count: int) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for i in range(count):
            resp = await http.post(
                f"{url}/v1/cameras",
                json={"name": f"bench-{i:03d}", "source_url": f"rtsp://10.2.0.{i}/s"},
                headers={"Authorization": f"Bearer {admin_key}"},
            )
            resp.raise_for_status()


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


def run_config(name: str, kind: str, count: int, opts: Options) -> Result:
    with tempfile.TemporaryDirectory(prefix="facefleet-bench-") as tmp:
        workdir = Path(tmp)
        with storage(kind, workdir) as settings:
            replicas: list[Replica] = []
            try:
                for index in range(count):
                    replicas.append(start_replica(workdir, settings, index))
                urls = [r.url for r in replicas]
                keys = json.loads((workdir / "data" / "default-tenant-keys.json").read_text())
                keys = keys["keys"]
                return measure(name, count, urls, keys, replicas, opts)
            finally:
                stop(replicas)


def measure(
    name: str,
    count: int,
    urls: list[str],
    keys: dict[str, str],
    replicas: list[Replica],
    opts: Options,
) -> Result:
    beaters = asyncio.run(register_all(urls, keys["worker"], "hb", opts.workers))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    per_generator = max(1, opts.concurrency // opts.generators)
    procs = []
    cpu_before = sum(process_cpu(r.proc.pid) for r in replicas)
    for g in range(opts.generators):
        share = [asdict(w) for w in beaters[g :: opts.generators]]
        args = {
            "urls": urls,
            "key": keys["worker"],
            "workers": share,
            "concurrency": per_generator,
            "warmup": opts.warmup,
            "duration": opts.duration,
        }
        proc = ctx.Process(target=heartbeat_generator, args=(args, queue))
        proc.start()
        procs.append(proc)
    results = [queue.get(timeout=opts.warmup + opts.duration + 120) for _ in procs]
    for proc in procs:
        proc.join(30)
    cpu_used = sum(process_cpu(r.proc.pid) for r in replicas) - cpu_before
    total = sum(r["count"] for r in results)
    answered = sum(r["answered"] for r in results)
    latencies = [v for r in results for v in r["latencies_ms"]]

    asyncio.run(add_cameras(urls[0], keys["admin"], opts.cameras))
    assigners = asyncio.run(register_all(urls, keys["worker"], "as", opts.cameras))
    assign = asyncio.run(assignment_rounds(urls, keys["worker"], assigners, opts.rounds))
    return Result(
        name=name,
        replicas=count,
        heartbeats_per_s=total / opts.duration,
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


def report(results: list[Result], opts: Options) -> str:
    base = results[0]
    lines = [
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; medians of "
        f"{opts.repeat} run(s) per configuration; {opts.duration:.0f}s of "
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
            f"| {r.heartbeats_per_s / base.heartbeats_per_s:.2f} "
            f"| {r.heartbeat_p50_ms:.1f} | {r.heartbeat_p99_ms:.1f} "
            f"| {r.replica_cpu_s_per_1k_heartbeats:.2f} "
            f"| {r.assign_seq_p50_ms:.1f} | {r.assign_seq_p50_ms / base.assign_seq_p50_ms:.2f} "
            f"| {r.assign_conc_p50_ms:.1f} "
            f"| {r.assign_conc_p50_ms / base.assign_conc_p50_ms:.2f} |"
        )
    one, two = results[1], results[2]
    lines += [
        "",
        f"two replicas / one replica (PostgreSQL + Redis): heartbeats "
        f"{two.heartbeats_per_s / one.heartbeats_per_s:.2f}x, assignment latency one at a "
        f"time {two.assign_seq_p50_ms / one.assign_seq_p50_ms:.2f}x, all at once "
        f"{two.assign_conc_p50_ms / one.assign_conc_p50_ms:.2f}x",
    ]
    errors = sum(r.heartbeat_errors for r in results)
    if errors:
        lines.append(f"heartbeat errors: {errors}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    configs = [
        ("embedded (SQLite + memory)", "embedded", 1),
        ("PostgreSQL + Redis", "shared", 1),
        ("PostgreSQL + Redis", "shared", 2),
    ]
    runs: list[list[Result]] = [[] for _ in configs]
    # In turn, so load that comes and goes on the machine spreads over every configuration.
    for rep in range(opts.repeat):
        for (name, kind, count), done in zip(configs, runs, strict=True):
            print(
                f"[{rep + 1}/{opts.repeat}] measuring {name}, {count} replica(s) ...",
                file=sys.stderr,
                flush=True,
            )
            done.append(run_config(name, kind, count, opts))
    results = [median_result(done) for done in runs]
    print(report(results, opts))
    if opts.json_path is not None:
        payload = {
            "options": asdict(opts),
            "results": [asdict(r) for r in results],
            "runs": [[asdict(r) for r in done] for done in runs],
        }
        opts.json_path.write_text(json.dumps(payload, indent=2, default=str))
    if statistics.fmean(r.heartbeats_per_s for r in results) <= 0:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import math
import multiprocessing as mp
import os
import platform
import queue
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
FACEFLEET_APP = "facefleet.api.app:create_app"
BARE_APP = "heartbeat:bare_app"  # this module, imported by uvicorn through --app-dir
HEARTBEAT_BODY = json.dumps({"metrics": {"fps": 5.0, "frames_dropped": 0}}).encode()
RATIO_TARGET = 0.4
# Above this, a closed-loop generator spends most of its time on the client stack rather than
# waiting for the server, and the rate measures the client.
SATURATED = 0.9

T = TypeVar("T")
ClientKind = Literal["httpx", "raw"]


# -- the baseline: a bare Starlette endpoint ---------------------------------------------------


async def _bare_heartbeat(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"status": "online", "fps": body["metrics"]["fps"]})


def bare_app() -> Starlette:
    """Same path, body and server stack as the real heartbeat, none of its work."""
    return Starlette(
        routes=[Route("/v1/workers/{worker_id}/heartbeat", _bare_heartbeat, methods=["POST"])]
    )


# -- options ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    workers: int
    scale_duration: float
    interval: float
    lease_ttl: float
    duration: float
    concurrency: int
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


FULL = {
    "workers": 10_000,
    "scale_duration": 30.0,
    "duration": 10.0,
    "throughput_workers": 256,
    "rounds": 3,
}
QUICK = {
    "workers": 400,
    "scale_duration": 10.0,
    "duration": 3.0,
    "throughput_workers": 64,
    "rounds": 1,
}


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(
        description="Heartbeat throughput and fleet-scale benchmark (loopback only)."
    )
    p.add_argument("--quick", action="store_true", help="small settings, under a minute")
    p.add_argument("--workers", type=int, help="simulated workers in the scale phase (10000)")
    p.add_argument("--scale-duration", type=float, help="measured seconds of the scale phase (30)")
    p.add_argument("--duration", type=float, help="measured seconds of each throughput run (10)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="in-flight heartbeats of a throughput run; connections per scale generator (64)",
    )
    p.add_argument(
        "--throughput-workers", type=int, help="workers the throughput run cycles through (256)"
    )
    p.add_argument(
        "--generators", type=int, default=1, help="load generator processes, throughput (1)"
    )
    p.add_argument(
        "--scale-generators", type=int, default=2, help="load generator processes, scale (2)"
    )
    p.add_argument(
        "--setup-concurrency",
        type=int,
        default=8,
        help="concurrent registrations and camera creations during setup (8)",
    )
    p.add_argument("--rounds", type=int, help="throughput rounds, alternating the two servers (3)")
    p.add_argument(
        "--setup-timeout",
        type=float,
        default=900.0,
        help="stop the scale phase if its fleet is not enrolled after this many seconds (900)",
    )
    p.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="heartbeat client: httpx.AsyncClient, or a minimal keep-alive HTTP/1.1 client "
        "that costs the generator far less CPU per request (httpx)",
    )
    p.add_argument("--interval", type=float, default=5.0, help="heartbeat interval, s (5)")
    p.add_argument("--lease-ttl", type=float, default=15.0, help="lease TTL, s (15)")
    p.add_argument(
        "--pin",
        action="store_true",
        help="pin the server to CPU 0 and the generators to the other CPUs",
    )
    p.add_argument("--only", choices=["throughput", "scale"], help="run one phase instead of both")
    p.add_argument("--json", type=Path, dest="json_path", help="also write results here")
    ns = p.parse_args(argv)
    preset = QUICK if ns.quick else FULL

    def pick(name: str) -> Any:
        value = getattr(ns, name)
        return preset[name] if value is None else value

    opts = Options(
        workers=int(pick("workers")),
        scale_duration=float(pick("scale_duration")),
        interval=ns.interval,
        lease_ttl=ns.lease_ttl,
        duration=float(pick("duration")),
        concurrency=ns.concurrency,
        throughput_workers=int(pick("throughput_workers")),
        generators=ns.generators,
        scale_generators=ns.scale_generators,
        setup_concurrency=ns.setup_concurrency,
        rounds=int(pick("rounds")),
        setup_timeout=ns.setup_timeout,
        client=ns.client,
        pin=ns.pin,
        phases=(ns.only,) if ns.only else ("throughput", "scale"),
        json_path=ns.json_path,
        quick=ns.quick,
    )
    if min(opts.workers, opts.concurrency, opts.throughput_workers, opts.generators) < 1:
        p.error("counts must be at least 1")
    if opts.generators > opts.concurrency:
        p.error("--generators cannot exceed --concurrency")
    if min(opts.scale_generators, opts.setup_concurrency, opts.rounds) < 1:
        p.error("counts must be at least 1")
    if opts.lease_ttl <= opts.interval:
        p.error("--lease-ttl must be longer than --interval")
    return opts


# -- CPU accounting (Linux /proc; None elsewhere) -----------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process, all its threads included."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0]
    except OSError:
        return None
    ticks = [int(v) for v in first.split()[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / _TICK, sum(ticks) / _TICK


def usable_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def machine_info() -> dict[str, Any]:
    model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for pkg in ("facefleet", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "httpx"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "absent"
    return {
        "cpus": len(usable_cpus()),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
    }


# -- statistics ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks; NaN for no data."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def latency_summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(values_ms, 50),
        "p90_ms": percentile(values_ms, 90),
        "p99_ms": percentile(values_ms, 99),
        "max_ms": max(values_ms) if values_ms else math.nan,
        "mean_ms": statistics.fmean(values_ms) if values_ms else math.nan,
    }


# -- the server under test -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(data_dir: Path, opts: Options) -> dict[str, str]:
    # Inherited FACEFLEET_* variables (a Redis URL, other timings) would change what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEFLEET_")}
    env.update(
        FACEFLEET_DATA_DIR=str(data_dir),
        FACEFLEET_DATABASE_URL=f"sqlite+aiosqlite:///{data_dir / 'bench.db'}",
        FACEFLEET_HEARTBEAT_INTERVAL=str(opts.interval),
        FACEFLEET_LEASE_TTL=str(opts.lease_ttl),
        FACEFLEET_BOOTSTRAP_DEFAULT_TENANT="true",
    )
    return env


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu(self) -> float | None:
        return process_cpu(self.proc.pid)

    def keys(self) -> dict[str, str]:
        payload = json.loads((self.data_dir / "default-tenant-keys.json").read_text())
        keys: dict[str, str] = payload["keys"]
        return keys


SERVER_FLAGS = ["--host", HOST, "--port", "<free port>", "--log-level", "warning"]


def uvicorn_command(app: str, port: int) -> list[str]:
    """One command line for both servers, so only the application differs."""
    flags = [str(port) if f == "<free port>" else f for f in SERVER_FLAGS]
    return [sys.executable, "-m", "uvicorn", app, "--factory", "--app-dir", str(BENCH_DIR), *flags]


@contextlib.contextmanager
def serve(
    name: str, app: str, data_dir: Path, opts: Options, cpus: set[int] | None
) -> Iterator[Server]:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            uvicorn_command(app, port),
            env=server_env(data_dir, opts),
            cwd=data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            if cpus:
                os.sched_setaffinity(proc.pid, cpus)
            server = Server(name, proc, port, data_dir)
            wait_ready(server, log_path, timeout=60.0)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_ready(server: Server, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server.name} server exited at start-up:\n{tail}")
        try:
            httpx.get(server.base_url + "/", timeout=1.0)  # any HTTP answer means it serves
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{server.name} server did not answer within {timeout:.0f}s")


# -- HTTP helpers shared by the main process and the generators ----------------------------------


def speed_up_httpcore() -> None:
    """Make httpcore's per-request ``import sniffio`` fail fast when sniffio is absent.

    httpcore 1.0 imports sniffio each time it sets up a lock (twice per request); recent anyio
    no longer installs it, and each failed import walks sys.path. A None entry in sys.modules
    fails the import at once and httpcore then assumes asyncio, which is what runs here.
    """
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


class ClientPool:
    """Single-connection httpx clients for setup calls (see HttpxLane for why single)."""

    def __init__(self, base_url: str, size: int, timeout: float = 30.0) -> None:
        tls = ssl.create_default_context()  # unused on loopback HTTP; built once, not per client
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.clients = [
            httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout, verify=tls)
            for _ in range(size)
        ]
        self._idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for client in self.clients:
            self._idle.put_nowait(client)

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        client = await self._idle.get()
        try:
            yield client
        finally:
            self._idle.put_nowait(client)

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))


@contextlib.asynccontextmanager
async def client_pool(
    base_url: str, size: int, request_timeout: float = 30.0
) -> AsyncIterator[ClientPool]:
    pool = ClientPool(base_url, size, request_timeout)
    try:
        yield pool
    finally:
        await pool.aclose()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Target:
    """One worker's heartbeat, prepared once in the form its client sends."""

    request: httpx.Request | None  # for httpx: building a request costs ~0.1 ms of client CPU
    raw: bytes  # for the raw client: the whole HTTP/1.1 request


def heartbeat_target(
    kind: ClientKind, base_url: str, worker_key: str, worker_id: str, token: str
) -> Target:
    path = f"/v1/workers/{worker_id}/heartbeat"
    headers = {**bearer(worker_key), "X-Worker-Session": token, "Content-Type": "application/json"}
    if kind == "httpx":
        request = httpx.Request("POST", base_url + path, headers=headers, content=HEARTBEAT_BODY)
        return Target(request, b"")
    host = base_url.removeprefix("http://")
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    raw = f"{head}Content-Length: {len(HEARTBEAT_BODY)}\r\n\r\n".encode() + HEARTBEAT_BODY
    return Target(None, raw)


class HttpxLane:
    """One single-connection httpx client.

    httpx's shared connection pool re-examines every connection on each request
    (encode/httpx#3215): at 64 connections that costs more client CPU than the request, and
    the generator would measure itself. One client per connection keeps the cost flat.
    """

    def __init__(self, base_url: str, tls: ssl.SSLContext, timeout: float) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.client = httpx.AsyncClient(
            base_url=base_url, limits=limits, timeout=timeout, verify=tls
        )

    async def send(self, target: Target) -> int:
        assert target.request is not None
        return (await self.client.send(target.request)).status_code

    async def aclose(self) -> None:
        await self.client.aclose()


class RawLane:
    """A keep-alive HTTP/1.1 connection that sends prepared requests and reads the answers.

    It understands just what uvicorn sends back (a Content-Length body) and costs a fraction
    of httpx's CPU per request, so the generator can offer rates httpx cannot on small hosts.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port, self.timeout = host, int(port), timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, target: Target) -> int:
        try:
            async with asyncio.timeout(self.timeout):
                if self.reader is None or self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.writer.write(target.raw)
                head = await self.reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
                await self.reader.readexactly(int(fields.get("content-length", "0")))
        except BaseException:
            await self.aclose()  # the connection's state is unknown: start a new one
            raise
        if fields.get("connection") == "close":
            await self.aclose()
        return status

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


Lane = HttpxLane | RawLane


class LanePool:
    """Heartbeat connections, lent out for one request at a time."""

    def __init__(self, kind: ClientKind, base_url: str, size: int, timeout: float = 30.0) -> None:
        tls = ssl.create_default_context()  # unused on loopback HTTP; built once, not per client
        self.lanes: list[Lane] = [
            HttpxLane(base_url, tls, timeout) if kind == "httpx" else RawLane(base_url, timeout)
            for _ in range(size)
        ]
        self._idle: asyncio.Queue[Lane] = asyncio.Queue()
        for lane in self.lanes:
            self._idle.put_nowait(lane)

    @contextlib.asynccontextmanager
    async def lane(self) -> AsyncIterator[Lane]:
        lane = await self._idle.get()
        try:
            yield lane
        finally:
            self._idle.put_nowait(lane)

    async def aclose(self) -> None:
        await asyncio.gather(*(lane.aclose() for lane in self.lanes))


def worker_id_of(index: int) -> str:
    return f"bench-{index:05d}"


async def bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    sem = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with sem:
            return await job()

    return await asyncio.gather(*(run(j) for j in jobs))


async def create_cameras(
    base_url: str, admin_key: str, count: int, concurrency: int
) -> tuple[int, float]:
    """Create ``count`` cameras; return how many failed and the seconds it took."""
    started = time.perf_counter()
    async with client_pool(base_url, concurrency, request_timeout=60.0) as pool:

        def job(i: int) -> Callable[[], Awaitable[bool]]:
            async def create() -> bool:
                async with pool.client() as client:
                    resp = await client.post(
                        "/v1/cameras",
                        json={"name": f"cam-{i:05d}", "source_url": f"rtsp://127.0.0.1/cam-{i}"},
                        headers=bearer(admin_key),
                    )
                return resp.status_code == 201

            return create

        done = await bounded(concurrency, [job(i) for i in range(count)])
    return done.count(False), time.perf_counter() - started


async def enroll(pool: ClientPool, worker_key: str, worker_id: str) -> str:
    """Register one worker and take a camera lease; return its session token.

    Raises RuntimeError naming the step that failed.
    """
    async with pool.client() as client:
        resp = await client.post(
            "/v1/workers/register",
            json={"worker_id": worker_id, "instance_id": f"{worker_id}-bench"},
            headers=bearer(worker_key),
        )
        if resp.status_code != 200:
            raise RuntimeError(f"register {resp.status_code}")
        token: str = resp.json()["session_token"]
        resp = await client.post(
            f"/v1/workers/{worker_id}/camera/request",
            headers={**bearer(worker_key), "X-Worker-Session": token},
        )
    if resp.status_code != 200:
        raise RuntimeError(f"camera request {resp.status_code}")
    if resp.json().get("assignment") is None:
        raise RuntimeError("no camera assigned")
    return token


async def enroll_many(
    base_url: str, worker_key: str, indexes: list[int], concurrency: int
) -> tuple[list[tuple[str, str]], Counter[str], float]:
    """Enrol workers; return (worker_id, token) pairs, failures by cause, seconds taken."""
    started = time.perf_counter()
    failures: Counter[str] = Counter()
    async with client_pool(base_url, concurrency, request_timeout=60.0) as pool:

        def job(i: int) -> Callable[[], Awaitable[tuple[str, str] | None]]:
            async def run() -> tuple[str, str] | None:
                wid = worker_id_of(i)
                try:
                    return wid, await enroll(pool, worker_key, wid)
                except (RuntimeError, httpx.HTTPError) as exc:
                    failures[str(exc) or type(exc).__name__] += 1
                    return None

            return run

        results = await bounded(concurrency, [job(i) for i in indexes])
    return [r for r in results if r is not None], failures, time.perf_counter() - started


async def get_json(base_url: str, path: str, key: str) -> tuple[Any, float]:
    """GET with an admin key; return the body and the seconds the call took."""
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0) as client:
        started = time.perf_counter()
        resp = await client.get(path, headers=bearer(key))
        elapsed = time.perf_counter() - started
        resp.raise_for_status()
        return resp.json(), elapsed


HEARTBEAT_ROUTE = "/v1/workers/{worker_id}/heartbeat"
Buckets = dict[float, float]  # upper bound -> cumulative count


def scrape_histograms(base_url: str) -> dict[str, Buckets]:
    """The server's own view from /metrics: its heartbeat latency (from the request's first
    byte to its last, queueing in the event loop included once parsing started), how late
    its event loop ran a 100 ms timer, and its full garbage collections."""
    resp = httpx.get(f"{base_url}/metrics", timeout=60.0)
    resp.raise_for_status()
    wanted = {
        "facefleet_http_request_duration_seconds_bucket": "heartbeat",
        "facefleet_event_loop_lag_seconds_bucket": "loop_lag",
        "facefleet_gc_pause_seconds_bucket": "gc_full",
    }
    out: dict[str, Buckets] = {"heartbeat": {}, "loop_lag": {}, "gc_full": {}}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            key = wanted.get(sample.name)
            if key is None:
                continue
            if key == "gc_full" and sample.labels.get("generation") != "2":
                continue
            if key == "heartbeat" and (
                sample.labels.get("route") != HEARTBEAT_ROUTE
                or sample.labels.get("status_class") != "2xx"
            ):
                continue
            bound = float(sample.labels["le"])
            out[key][bound] = out[key].get(bound, 0.0) + sample.value
    return out


def bucket_delta(before: Buckets, after: Buckets) -> Buckets:
    return {le: after[le] - before.get(le, 0.0) for le in sorted(after)}


def observed(buckets: Buckets) -> int:
    return int(buckets.get(math.inf, 0.0))


def bucket_quantile(buckets: Buckets, q: float) -> float | None:
    """The upper bound of the bucket holding quantile q (inf past the last finite bound)."""
    total = observed(buckets)
    if total <= 0:
        return None
    for le, count in sorted(buckets.items()):
        if count >= q * total:
            return le
    return math.inf


def above(buckets: Buckets, bound: float) -> int:
    """Observations above ``bound`` (which must be one of the bucket bounds)."""
    return observed(buckets) - int(buckets.get(bound, 0.0))


# -- load generator processes ------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorSpec:
    index: int
    mode: Literal["closed", "paced"]
    client: ClientKind
    base_url: str
    worker_key: str
    # closed: enrolled (worker_id, token) pairs to cycle through.
    credentials: tuple[tuple[str, str], ...]
    # paced: global worker indexes this generator enrols and then drives.
    fleet: tuple[int, ...]
    fleet_size: int
    interval: float
    concurrency: int
    setup_concurrency: int
    duration: float
    epoch: float  # wall-clock origin of the paced schedule, shared by all generators
    deadline: float  # wall-clock time after which the generator gives up on its own
    cpus: tuple[int, ...]


@dataclass
class Ready:
    index: int
    setup_seconds: float
    enrolled: int
    failures: dict[str, int]


@dataclass
class Progress:
    index: int
    enrolled: int  # paced: workers enrolled so far (failures included)


@dataclass
class GeneratorResult:
    index: int
    ok: int = 0  # 200 responses to requests sent inside the window
    sent: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # inside the window, by cause
    errors_total: dict[str, int] = field(default_factory=dict)  # whole run after enrolment
    latencies_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)  # paced: sent how late after its slot
    skipped: int = 0  # paced: slots dropped because the worker was a whole interval late
    max_gap: float = 0.0  # paced: longest time between two successful heartbeats of a worker
    max_gap_window: float = 0.0  # the same, for gaps that ended inside the window
    lost: int = 0  # paced: workers told they are not registered (404), which then stop
    enrolled: int = 0  # paced: workers registered with a camera lease
    cpu_seconds: float = math.nan  # generator CPU inside the window
    error: str | None = None  # the generator itself failed


Message = tuple[Literal["ready", "progress", "result"], Ready | Progress | GeneratorResult]


class Window:
    """The measured interval as a generator sees it: unset until the main process opens it."""

    def __init__(self, start: Synchronized[float], duration: float) -> None:
        self._shared = start
        self.duration = duration
        self.start = math.inf
        self.end = math.inf

    def refresh(self) -> None:
        if math.isinf(self.start) and (value := self._shared.value) > 0:
            self.start = value
            self.end = value + self.duration

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end


async def heartbeat(lane: Lane, target: Target) -> tuple[str | None, float]:
    """Send one heartbeat: (None or the cause of failure, latency in ms)."""
    t0 = time.perf_counter()
    try:
        status = await lane.send(target)
    except (httpx.HTTPError, OSError, asyncio.IncompleteReadError) as exc:
        return type(exc).__name__, (time.perf_counter() - t0) * 1000
    latency = (time.perf_counter() - t0) * 1000
    return (None if status == 200 else str(status)), latency


def generator_main(
    spec: GeneratorSpec, start: Synchronized[float], stop: Event, out: Queue[Message]
) -> None:
    """Entry point of a generator process."""
    speed_up_httpcore()
    if spec.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, spec.cpus)
    result = GeneratorResult(spec.index)
    try:
        run_loop(_generate(spec, Window(start, spec.duration), stop, out, result))
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    out.put(("result", result))


def run_loop(coro: Coroutine[Any, Any, None]) -> None:
    # uvloop trims the client's share of the CPU; it is what uvicorn runs the servers on.
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


async def _generate(
    spec: GeneratorSpec,
    window: Window,
    stop: Event,
    out: Queue[Message],
    result: GeneratorResult,
) -> None:
    lanes = LanePool(spec.client, spec.base_url, spec.concurrency)
    async with client_pool(spec.base_url, spec.setup_concurrency) as setup_pool:
        stopping = asyncio.Event()
        cpu_at_start: list[float] = []

        async def watch() -> None:
            # Shared-memory reads take a lock, so the hot loops read local copies refreshed here.
            while not stopping.is_set():
                window.refresh()
                now = time.time()
                if not cpu_at_start and now >= window.start:
                    cpu_at_start.append(time.process_time())
                if now >= window.end and math.isnan(result.cpu_seconds) and cpu_at_start:
                    result.cpu_seconds = time.process_time() - cpu_at_start[0]
                done = now >= window.end if spec.mode == "closed" else stop.is_set()
                if done or now >= spec.deadline:
                    stopping.set()
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        if spec.mode == "closed":
            out.put(("ready", Ready(spec.index, 0.0, len(spec.credentials), {})))
            await _closed_loop(spec, lanes, window, stopping, result)
        else:
            await _paced_fleet(spec, setup_pool, lanes, window, stopping, out, result)
        stopping.set()
        await watcher
        await lanes.aclose()


async def _closed_loop(
    spec: GeneratorSpec,
    lanes: LanePool,
    window: Window,
    stopping: asyncio.Event,
    result: GeneratorResult,
) -> None:
    targets = [
        heartbeat_target(spec.client, spec.base_url, spec.worker_key, wid, token)
        for wid, token in spec.credentials
    ]
    errors: Counter[str] = Counter()

    async def run_lane(first: int, lane: Lane) -> None:
        i = first
        while not stopping.is_set():
            target = targets[i % len(targets)]
            i += spec.concurrency
            failure, latency = await heartbeat(lane, target)
            # A request counts when it completes inside the window: that is the served rate.
            if not window.contains(time.time()):
                continue
            result.sent += 1
            if failure is None:
                result.ok += 1
                result.latencies_ms.append(latency)
            else:
                errors[failure] += 1

    # Each coroutine owns one connection: exactly `concurrency` requests in flight.
    await asyncio.gather(*(run_lane(k, lane) for k, lane in enumerate(lanes.lanes)))
    result.errors = dict(errors)
    result.errors_total = dict(errors)


async def _paced_fleet(
    spec: GeneratorSpec,
    setup_pool: ClientPool,
    lanes: LanePool,
    window: Window,
    stopping: asyncio.Event,
    out: Queue[Message],
    result: GeneratorResult,
) -> None:
    started = time.perf_counter()
    setup = asyncio.Semaphore(spec.setup_concurrency)
    failures: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    errors_total: Counter[str] = Counter()
    pending = len(spec.fleet)
    all_enrolled = asyncio.Event()

    def enrolled_one() -> None:
        nonlocal pending
        pending -= 1
        if pending == 0:
            all_enrolled.set()
        elif pending % 250 == 0:
            out.put(("progress", Progress(spec.index, len(spec.fleet) - pending)))

    async def simulated_worker(index: int) -> None:
        wid = worker_id_of(index)
        async with setup:
            try:
                token = await enroll(setup_pool, spec.worker_key, wid)
            except (RuntimeError, httpx.HTTPError) as problem:
                failures[str(problem) or type(problem).__name__] += 1
                enrolled_one()
                return
        result.enrolled += 1
        enrolled_one()
        target = heartbeat_target(spec.client, spec.base_url, spec.worker_key, wid, token)
        # Slot k of this worker is epoch + phase + k * interval: the fleet's heartbeats are
        # spread evenly over each interval, as jittered real workers would be on average.
        phase = spec.interval * index / spec.fleet_size
        last_ok = time.time()
        due = spec.epoch + phase
        due += math.ceil(max(0.0, last_ok - due) / spec.interval) * spec.interval
        while True:
            # A plain sleep is the cheapest timer; the task is cancelled when the run stops.
            await asyncio.sleep(max(0.0, due - time.time()))
            async with lanes.lane() as lane:
                sent = time.time()
                failure, latency = await heartbeat(lane, target)
            if failure is None:
                now = time.time()
                result.max_gap = max(result.max_gap, now - last_ok)
                if window.contains(now):
                    result.max_gap_window = max(result.max_gap_window, now - last_ok)
                last_ok = now
            else:
                errors_total[failure] += 1
            if window.contains(sent):
                result.sent += 1
                # Lateness behind the slot: generator scheduling plus waiting for a client.
                result.lag_ms.append((sent - due) * 1000)
                if failure is None:
                    result.ok += 1
                    result.latencies_ms.append(latency)
                else:
                    errors[failure] += 1
            if failure == "404":
                # The reaper took this worker offline; a real agent would register again,
                # which is another workload: this one stops and is counted as lost.
                result.lost += 1
                return
            due += spec.interval
            # A worker more than a whole interval late drops the missed slots instead of
            # bursting; the drops are reported, as they lower the offered rate.
            while due < time.time():
                due += spec.interval
                result.skipped += 1

    tasks = [asyncio.create_task(simulated_worker(i)) for i in spec.fleet]
    if not tasks:
        all_enrolled.set()
    waits = [asyncio.create_task(all_enrolled.wait()), asyncio.create_task(stopping.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if all_enrolled.is_set():
        enrolled = len(spec.fleet) - sum(failures.values())
        setup_s = time.perf_counter() - started
        out.put(("ready", Ready(spec.index, setup_s, enrolled, dict(failures))))
    await stopping.wait()
    for task in [*tasks, *waits]:
        task.cancel()
    await asyncio.gather(*tasks, *waits, return_exceptions=True)
    result.errors = dict(errors)
    result.errors_total = dict(errors_total)


@dataclass
class Drive:
    """What the main process saw of one generator run."""

    results: list[GeneratorResult]
    ready: list[Ready]
    window_start: float  # inf when the generators never got ready
    server_cpu: float | None  # CPU seconds of the server inside the window
    machine_busy: float | None  # CPU seconds the whole machine was busy inside the window
    checks: dict[str, Any]


def drive(
    server: Server,
    specs: list[GeneratorSpec],
    *,
    duration: float,
    settle: float,
    ready_timeout: float,
    before_window: Callable[[], dict[str, Any]] | None = None,
    at_window_end: Callable[[], dict[str, Any]] | None = None,
) -> Drive:
    """Run generator processes, open the window once all are ready, collect their results.

    ``before_window`` runs a second before the window opens, ``at_window_end`` right after
    it, while paced generators still keep the fleet
    alive, so its queries do not disturb the measurement and see a live fleet. When the
    generators are not ready in time no window opens: the run stops there and reports what
    it saw, which on an overloaded server is the finding.
    """
    ctx = mp.get_context("spawn")
    start: Synchronized[float] = ctx.Value("d", 0.0)
    stop = ctx.Event()
    out: Queue[Message] = ctx.Queue()
    procs: list[SpawnProcess] = [
        ctx.Process(target=generator_main, args=(s, start, stop, out), daemon=True) for s in specs
    ]
    results: dict[int, GeneratorResult] = {}
    ready: dict[int, Ready] = {}
    progress: dict[int, int] = {}
    checks: dict[str, Any] = {}
    baseline: dict[str, Any] = {}
    window_start = math.inf
    cpu0 = cpu1 = None
    machine0 = machine1 = None

    def receive(timeout: float) -> None:
        _, payload = out.get(timeout=timeout)
        if isinstance(payload, GeneratorResult):
            results[payload.index] = payload
            if payload.error:
                raise RuntimeError(f"generator {payload.index} failed: {payload.error}")
        elif isinstance(payload, Progress):
            progress[payload.index] = payload.enrolled
        else:
            ready[payload.index] = payload

    try:
        for proc in procs:
            proc.start()
        started = time.monotonic()
        reported = started
        while len(ready) < len(specs) and time.monotonic() - started < ready_timeout:
            with contextlib.suppress(queue.Empty):
                receive(1.0)
            if progress and time.monotonic() - reported >= 30:
                reported = time.monotonic()
                print(f"  ... {sum(progress.values())} enrolled after {reported - started:.0f}s")
        if len(ready) == len(specs):
            window_start = time.time() + settle
            start.value = window_start
            if before_window is not None:
                time.sleep(max(0.0, window_start - 1.0 - time.time()))
                baseline = before_window()
            time.sleep(max(0.0, window_start - time.time()))
            cpu0, machine0 = server.cpu(), machine_cpu()
            time.sleep(max(0.0, window_start + duration - time.time()))
            cpu1, machine1 = server.cpu(), machine_cpu()
        else:
            print(f"  not ready after {ready_timeout:.0f}s: stopping without a measurement")
        if at_window_end is not None:
            checks = at_window_end()
            checks["baseline"] = baseline
        stop.set()
        deadline = time.monotonic() + 120.0
        while len(results) < len(specs):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("generators did not report their results")
            with contextlib.suppress(queue.Empty):
                receive(min(left, 1.0))
    finally:
        stop.set()
        for proc in procs:
            if proc.pid is None:
                continue  # never started
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join()
    server_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    busy = None if machine0 is None or machine1 is None else machine1[0] - machine0[0]
    return Drive(
        [results[i] for i in sorted(results)],
        [ready[i] for i in sorted(ready)],
        window_start,
        server_cpu,
        busy,
        checks,
    )


def generator_cpus(opts: Options) -> tuple[set[int] | None, tuple[int, ...]]:
    """CPU sets of (server, generators): the first CPU for the server when pinning."""
    cpus = usable_cpus()
    if not opts.pin or len(cpus) < 2:
        return None, ()
    return {cpus[0]}, tuple(cpus[1:])


def merge_counts(dicts: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for d in dicts:
        total.update(d)
    return dict(total)


# -- phase 1: throughput -----------------------------------------------------------------------


def cpu_shares(run: Drive, duration: float) -> dict[str, float | None]:
    """CPU use inside the window in CPUs (1.0 = one core busy all the time).

    ``other`` is what the rest of the machine used meanwhile: anything above a few percent
    means the figures were taken on a machine that was not otherwise idle.
    """
    gen = sum(r.cpu_seconds for r in run.results)
    other = None
    if run.machine_busy is not None and run.server_cpu is not None:
        other = max(0.0, run.machine_busy - run.server_cpu - gen) / duration
    return {
        "server": None if run.server_cpu is None else run.server_cpu / duration,
        "generators": gen / duration,
        "other": other,
        "machine": None if run.machine_busy is None else run.machine_busy / duration,
    }


def closed_run(
    server: Server, opts: Options, credentials: list[tuple[str, str]], worker_key: str
) -> Drive:
    _, gen_cpus = generator_cpus(opts)
    specs = [
        GeneratorSpec(
            index=g,
            mode="closed",
            client=opts.client,
            base_url=server.base_url,
            worker_key=worker_key,
            credentials=tuple(credentials[g :: opts.generators]) or tuple(credentials),
            fleet=(),
            fleet_size=0,
            interval=opts.interval,
            # The in-flight total is --concurrency whatever the number of processes.
            concurrency=opts.concurrency // opts.generators
            + (1 if g < opts.concurrency % opts.generators else 0),
            setup_concurrency=1,
            duration=opts.duration,
            epoch=0.0,
            deadline=time.time() + opts.duration + 120.0,
            cpus=gen_cpus,
        )
        for g in range(opts.generators)
    ]
    return drive(server, specs, duration=opts.duration, settle=2.0, ready_timeout=60.0)


def summarize_closed(runs: list[Drive], duration: float) -> dict[str, Any]:
    """Rounds of one server: the median rate, pooled latencies, mean CPU shares."""
    rates = [sum(r.ok for r in run.results) / duration for run in runs]
    ok = sum(r.ok for run in runs for r in run.results)
    latencies = [v for run in runs for r in run.results for v in r.latencies_ms]
    shares = [cpu_shares(run, duration) for run in runs]

    def mean_share(key: str) -> float | None:
        values = [s[key] for s in shares]
        return (
            None
            if any(v is None for v in values)
            else statistics.fmean([v for v in values if v is not None])
        )

    server_cpu = [run.server_cpu for run in runs]
    known = [c for c in server_cpu if c is not None]
    gen_cpu = sum(r.cpu_seconds for run in runs for r in run.results)
    return {
        "requests_per_s": statistics.median(rates),
        "rounds_per_s": rates,
        "ok": ok,
        "errors": merge_counts([r.errors for run in runs for r in run.results]),
        "latency": latency_summary(latencies),
        "cpu": {key: mean_share(key) for key in ("server", "generators", "other", "machine")},
        "server_cpu_us_per_request": sum(known) / ok * 1e6
        if ok and len(known) == len(runs)
        else None,
        "generator_cpu_us_per_request": gen_cpu / ok * 1e6 if ok else None,
    }


def phase_throughput(opts: Options, tmp: Path) -> dict[str, Any]:
    server_cpus, _ = generator_cpus(opts)
    n = opts.throughput_workers
    ff_runs: list[Drive] = []
    bare_runs: list[Drive] = []
    # Rounds alternate the two servers, so a slow spell of a shared machine hits both. Each
    # facefleet round gets a fresh server: a fleet left silent would be reaped meanwhile.
    for r in range(opts.rounds):
        data_dir = tmp / f"throughput-{r}"
        with serve("facefleet", FACEFLEET_APP, data_dir, opts, server_cpus) as server:
            keys = server.keys()
            failed, cam_s = asyncio.run(
                create_cameras(server.base_url, keys["admin"], n, opts.setup_concurrency)
            )
            creds, failures, enrol_s = asyncio.run(
                enroll_many(server.base_url, keys["worker"], list(range(n)), opts.setup_concurrency)
            )
            if failed or failures:
                raise RuntimeError(f"setup failed: {failed} cameras, {dict(failures)}")
            ff_runs.append(closed_run(server, opts, creds, keys["worker"]))
        with serve("bare", BARE_APP, tmp / f"bare-{r}", opts, server_cpus) as bare:
            # The headers and body real workers send, with made-up identities.
            fake = [(worker_id_of(i), f"token-{i}") for i in range(n)]
            bare_runs.append(closed_run(bare, opts, fake, "ff_worker_bench"))
        ff_rate = sum(x.ok for x in ff_runs[-1].results) / opts.duration
        bare_rate = sum(x.ok for x in bare_runs[-1].results) / opts.duration
        print(
            f"  round {r + 1}/{opts.rounds}: setup {cam_s + enrol_s:.1f}s, "
            f"facefleet {ff_rate:.0f} req/s, bare {bare_rate:.0f} req/s"
        )
    facefleet = summarize_closed(ff_runs, opts.duration)
    baseline = summarize_closed(bare_runs, opts.duration)
    ratio = facefleet["requests_per_s"] / baseline["requests_per_s"]
    cost_ratio = None
    if facefleet["server_cpu_us_per_request"] and baseline["server_cpu_us_per_request"]:
        cost_ratio = baseline["server_cpu_us_per_request"] / facefleet["server_cpu_us_per_request"]
    return {
        "workers": n,
        "duration_s": opts.duration,
        "rounds": opts.rounds,
        "concurrency": opts.concurrency,
        "generators": opts.generators,
        "client": opts.client,
        "facefleet": facefleet,
        "bare": baseline,
        "ratio": ratio,
        "rounds_ratio": [
            f / b for f, b in zip(facefleet["rounds_per_s"], baseline["rounds_per_s"], strict=True)
        ],
        "cpu_cost_ratio": cost_ratio,
        "target_ratio": RATIO_TARGET,
        "target_met": ratio >= RATIO_TARGET,
    }


# -- phase 2: fleet scale ----------------------------------------------------------------------


def fleet_checks(server: Server, admin_key: str) -> dict[str, Any]:
    # First, before the heavier queries below could show up in the server's histograms.
    server_view = scrape_histograms(server.base_url)

    async def run() -> dict[str, Any]:
        stats, stats_s = await get_json(server.base_url, "/v1/workers/stats", admin_key)
        counts: dict[str, int] = {}
        list_s: dict[str, float] = {}
        for status in ("suspect", "offline"):
            page, elapsed = await get_json(
                server.base_url, f"/v1/workers?status={status}&limit=1", admin_key
            )
            counts[status] = int(page["total"])
            list_s[status] = elapsed
        return {
            "stats": stats,
            "stats_seconds": stats_s,
            "listed": counts,
            "list_seconds": list_s,
            "server_view": server_view,
        }

    return asyncio.run(run())


def recorded_events(db: Path, window_start: float, window_end: float) -> dict[str, dict[str, int]]:
    """Audit events per kind and per part of the run, read from the stopped server's database.

    The API only shows current statuses; a worker that went suspect and recovered is visible
    only in its history, so the whole fleet's history is counted here.
    """

    def stamp(t: float) -> str:
        # How the UTC column is stored on SQLite, so that text comparison orders correctly.
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    uri = f"file:{db}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        rows = conn.execute(
            "SELECT kind, CASE WHEN created_at < ? THEN 'setup' WHEN created_at < ? "
            "THEN 'window' ELSE 'after' END, count(*) FROM worker_events GROUP BY 1, 2",
            (stamp(window_start), stamp(window_end)),
        ).fetchall()
    out: dict[str, dict[str, int]] = {}
    for kind, part, count in rows:
        out.setdefault(str(kind), {"setup": 0, "window": 0, "after": 0})[str(part)] = int(count)
    return out


def phase_scale(opts: Options, tmp: Path) -> dict[str, Any]:
    server_cpus, gen_cpus = generator_cpus(opts)
    n, g = opts.workers, opts.scale_generators
    data_dir = tmp / "scale"
    with serve("facefleet", FACEFLEET_APP, data_dir, opts, server_cpus) as server:
        keys = server.keys()
        failed, cam_s = asyncio.run(
            create_cameras(server.base_url, keys["admin"], n, opts.setup_concurrency)
        )
        if failed:
            raise RuntimeError(f"scale setup: {failed} cameras could not be created")
        print(f"  setup: {n} cameras in {cam_s:.1f}s; enrolling {n} workers ...")
        epoch = time.time()
        per_gen = max(1, opts.setup_concurrency // g)
        specs = [
            GeneratorSpec(
                index=k,
                mode="paced",
                client=opts.client,
                base_url=server.base_url,
                worker_key=keys["worker"],
                credentials=(),
                fleet=tuple(range(k, n, g)),
                fleet_size=n,
                interval=opts.interval,
                # Clients for the heartbeats in flight at once, latency spikes included.
                concurrency=opts.concurrency,
                setup_concurrency=per_gen,
                duration=opts.scale_duration,
                epoch=epoch,
                deadline=epoch + opts.setup_timeout + opts.scale_duration + 600.0,
                cpus=gen_cpus,
            )
            for k in range(g)
        ]
        run = drive(
            server,
            specs,
            duration=opts.scale_duration,
            # One full interval after the last enrolment every worker is on its slot schedule.
            settle=opts.interval + 1.0,
            ready_timeout=opts.setup_timeout,
            before_window=lambda: scrape_histograms(server.base_url),
            at_window_end=lambda: fleet_checks(server, keys["admin"]),
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
    latencies = [v for r in results for v in r.latencies_ms]
    lags = [v for r in results for v in r.lag_ms]
    sent = sum(r.sent for r in results)
    ok = sum(r.ok for r in results)
    stats_workers: dict[str, int] = run.checks["stats"]["workers"]
    enrol_failures = merge_counts([r.failures for r in run.ready])
    enrolled = sum(r.enrolled for r in results)
    errors_total = merge_counts([r.errors_total for r in results])

    # Each check sees transitions the others can miss: the history keeps recovered suspects,
    # the API shows current states, a 404 shows a worker the reaper dropped.
    def history(kind: str, part: str | None = None) -> int:
        parts = events.get(kind, {})
        return parts.get(part, 0) if part else sum(parts.values())

    server_view: dict[str, Any] = {}
    if completed and run.checks.get("baseline"):
        before, after = run.checks["baseline"], run.checks["server_view"]
        hb = bucket_delta(before["heartbeat"], after["heartbeat"])
        lag = bucket_delta(before["loop_lag"], after["loop_lag"])
        gc_full = bucket_delta(before["gc_full"], after["gc_full"])
        server_view = {
            "heartbeats": observed(hb),
            "heartbeat_p99_le_ms": _ms(bucket_quantile(hb, 0.99)),
            "heartbeats_over_50ms": above(hb, 0.05),
            "loop_probes": observed(lag),
            "loop_lag_p99_le_ms": _ms(bucket_quantile(lag, 0.99)),
            "loop_stalls_over_50ms": above(lag, 0.05),
            "loop_stalls_over_250ms": above(lag, 0.25),
            "full_gcs": observed(gc_full),
            "full_gc_p100_le_ms": _ms(bucket_quantile(gc_full, 1.0)),
        }

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
    return {
        "completed": completed,
        "workers": n,
        "enrolled": enrolled,
        "enrol_failures": enrol_failures,
        "generators": g,
        "client": opts.client,
        "interval_s": opts.interval,
        "lease_ttl_s": opts.lease_ttl,
        "duration_s": opts.scale_duration,
        "setup": {"cameras_s": cam_s, "enrol_s": enrol_s},
        "offered_per_s": n / opts.interval,
        "sent_per_s": sent / opts.scale_duration,
        "ok_per_s": ok / opts.scale_duration,
        "errors": merge_counts([r.errors for r in results]),
        "errors_total": errors_total,
        "latency": latency_summary(latencies),
        "send_lag": latency_summary(lags),
        "skipped_slots": sum(r.skipped for r in results),
        "max_gap_s": max((r.max_gap for r in results), default=0.0),
        "max_gap_window_s": max((r.max_gap_window for r in results), default=0.0),
        "suspect_after_s": opts.interval * 2,
        "cpu": cpu_shares(run, opts.scale_duration),
        "server_view": server_view,
        "checks": run.checks,
        "events": events,
        "spurious": spurious,
        "clean": completed and not any(spurious.values()) and stats_workers.get("online", 0) == n,
    }


# -- report -------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _f(value: float | None, spec: str = ".0f", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:{spec}}{unit}"


def _pct(value: float | None) -> str:
    return _f(None if value is None else value * 100, ".0f", "%")


def print_throughput(tp: dict[str, Any]) -> None:
    print(
        f"\nHeartbeat throughput: closed loop, {tp['client']} client, "
        f"{tp['concurrency']} in flight, "
        f"{tp['generators']} generator process(es), {tp['workers']} workers, "
        f"{tp['rounds']} round(s) of {tp['duration_s']:g} s per server"
    )
    head = (
        f"{'server':<15}{'req/s':>7}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
        f"{'server CPU':>11}{'gen CPU':>8}{'other CPU':>10}{'server us/req':>14}"
    )
    print(head)
    print("-" * len(head))
    for name, run in (("facefleet", tp["facefleet"]), ("bare Starlette", tp["bare"])):
        cpu = run["cpu"]
        print(
            f"{name:<15}{run['requests_per_s']:>7.0f}{_f(run['latency']['p50_ms'], '.1f'):>8}"
            f"{_f(run['latency']['p99_ms'], '.1f'):>8}{sum(run['errors'].values()):>7}"
            f"{_pct(cpu['server']):>11}{_pct(cpu['generators']):>8}{_pct(cpu['other']):>10}"
            f"{_f(run['server_cpu_us_per_request']):>14}"
        )
    met = "met" if tp["target_met"] else "NOT met"
    rounds = ", ".join(f"{r:.2f}" for r in tp["rounds_ratio"])
    print(
        f"ratio facefleet/bare (median rates): {tp['ratio']:.2f} "
        f"(target >= {tp['target_ratio']:.2f}: {met}); per round: {rounds}"
    )
    if tp["cpu_cost_ratio"] is not None:
        print(
            f"server CPU per request, bare/facefleet: {tp['cpu_cost_ratio']:.2f} "
            "(the ratio a client of unlimited speed would measure)"
        )
    print("CPU columns: cores in use; 100% = one core. 'other' = the rest of the machine.")
    for name in ("facefleet", "bare"):
        cpu = tp[name]["cpu"]
        per_process = cpu["generators"] / tp["generators"]
        if per_process >= SATURATED and (cpu["server"] or 0) < SATURATED:
            print(
                f"note: against {name} each generator process was CPU-bound "
                f"({_pct(per_process)}) while the server used {_pct(cpu['server'])}: "
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
    if not sc["completed"]:
        print(
            f"NOT MEASURED: only {sc['enrolled']} of {sc['workers']} workers were enrolled "
            f"after {sc['setup']['enrol_s']:.0f} s; the state of the fleet at that point:"
        )
    lat, lag = sc["latency"], sc["send_lag"]
    rows = [
        ("offered rate", f"{sc['offered_per_s']:.0f} req/s"),
        ("sent rate", f"{sc['sent_per_s']:.0f} req/s"),
        ("200 OK rate", f"{sc['ok_per_s']:.0f} req/s"),
        ("errors in window", str(sc["errors"] or 0)),
        ("latency p50", f"{_f(lat['p50_ms'], '.1f')} ms"),
        ("latency p99", f"{_f(lat['p99_ms'], '.1f')} ms"),
        ("latency max", f"{_f(lat['max_ms'], '.1f')} ms"),
        ("send lag p99 (generator late)", f"{_f(lag['p99_ms'], '.1f')} ms"),
        ("skipped slots", str(sc["skipped_slots"])),
        (
            "longest heartbeat gap",
            f"{sc['max_gap_window_s']:.2f} s in the window, {sc['max_gap_s']:.2f} s over the "
            f"run (suspect after {sc['suspect_after_s']:g} s)",
        ),
        ("server CPU", _pct(sc["cpu"]["server"])),
        ("generators CPU", _pct(sc["cpu"]["generators"])),
        ("other processes CPU", _pct(sc["cpu"]["other"])),
    ]
    if not sc["completed"]:
        rows = [
            (
                "longest heartbeat gap",
                f"{sc['max_gap_s']:.2f} s (suspect after {sc['suspect_after_s']:g} s)",
            )
        ]
    if view := sc.get("server_view"):
        rows += [
            (
                "server-side heartbeat p99",
                f"<= {_f(view['heartbeat_p99_le_ms'], '.0f')} ms (histogram bucket), "
                f"{view['heartbeats_over_50ms']} of {view['heartbeats']} over 50 ms",
            ),
            (
                "server event loop lag p99",
                f"<= {_f(view['loop_lag_p99_le_ms'], '.0f')} ms; stalls over 50 ms: "
                f"{view['loop_stalls_over_50ms']}, over 250 ms: "
                f"{view['loop_stalls_over_250ms']} (of {view['loop_probes']} probes)",
            ),
            (
                "server full garbage collections",
                f"{view['full_gcs']}, the longest <= {_f(view['full_gc_p100_le_ms'], '.0f')} ms",
            ),
        ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    checks = sc["checks"]
    workers = checks["stats"]["workers"]
    print(
        "GET /v1/workers/stats: "
        + ", ".join(f"{k} {v}" for k, v in workers.items() if v or k == "online")
        + f" (answered in {checks['stats_seconds'] * 1000:.0f} ms)"
    )
    print(
        "GET /v1/workers?status=: "
        + ", ".join(
            f"{k} {v} ({checks['list_seconds'][k] * 1000:.0f} ms)"
            for k, v in checks["listed"].items()
        )
    )
    for kind in ("suspect", "offline", "recovered"):
        parts = sc["events"].get(kind, {})
        print(
            f"history '{kind}' events: {parts.get('setup', 0)} during setup, "
            f"{parts.get('window', 0)} in the window, {parts.get('after', 0)} after it"
        )
    print(f"workers lost (heartbeat answered 404): {sc['spurious']['lost_workers']}")
    if sc["clean"]:
        verdict = "none"
    elif any(sc["spurious"].values()):
        verdict = "SOME (see above)"
    else:
        verdict = "none seen, but the run stopped before its window"
    print(f"spurious suspect/offline transitions: {verdict}")
    if sc["completed"] and sc["sent_per_s"] < 0.98 * sc["offered_per_s"]:
        print(
            f"note: the generators offered {sc['sent_per_s']:.0f} req/s, short of the "
            f"{sc['offered_per_s']:.0f} req/s the fleet should send"
        )


def finite(value: Any) -> Any:
    """The report with NaN and infinities as null, so the JSON file is standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    speed_up_httpcore()
    info = machine_info()
    print(
        f"facefleet heartbeat benchmark on {info['cpus']} CPU(s) ({info['cpu_model']}), "
        f"Python {info['python']}; server and load generators share these CPUs"
        + (", server pinned to the first" if opts.pin and info["cpus"] > 1 else "")
    )
    report: dict[str, Any] = {
        "machine": info,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "server_command": [
            *("python", "-m", "uvicorn", "<app>", "--factory", "--app-dir", "bench"),
            *SERVER_FLAGS,
        ],
    }
    with tempfile.TemporaryDirectory(prefix="facefleet-bench-") as tmp:
        if "throughput" in opts.phases:
            print("\n[throughput]")
            report["throughput"] = phase_throughput(opts, Path(tmp))
        if "scale" in opts.phases:
            print("\n[scale]")
            report["scale"] = phase_scale(opts, Path(tmp))
    if "throughput" in report:
        print_throughput(report["throughput"])
    if "scale" in report:
        print_scale(report["scale"])
    if opts.json_path:
        text = json.dumps(finite(report), indent=2, default=str, allow_nan=False)
        opts.json_path.write_text(text + "\n")
        print(f"\nresults written to {opts.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

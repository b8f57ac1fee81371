"""The chaos suite: the fleet as it runs in production, hit by every fault we know of.

Two control-plane replicas (separate processes) share a private PostgreSQL and a private
redis-server started on free ports; six real worker processes reach them through a TCP load
balancer and stream four cameras (demo videos at 5 fps, two of them showing a face). A
seeded random schedule injects each fault once, in a random order, with random targets:
kill -9 a worker, SIGTERM a worker, SIGSTOP a worker for longer than the lease TTL,
kill -9 a replica and restart it, restart redis-server (it comes back empty), SIGSTOP
PostgreSQL for a few seconds, restart one replica with its clock 5 s off (Debian's
libfaketime), give a camera a URL no worker can open, and have the load balancer cut
connections at random for ten seconds, some only on the replica's side (the worker's end
left open and silent). Operators send commands all along.

From the workers' own record of every frame they processed and from the database, the
checker asserts and prints: camera-seconds in which two workers processed one camera (0),
sightings accepted under an epoch older than one already accepted (0), how long every camera
took to stream again after each fault, acknowledged sightings and commands lost (0), and the
camera-seconds nobody processed. FACEFLEET_CHAOS_SEED replays a schedule.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from facefleet.demo.faces import make_face_video
from facefleet.demo.video import make_demo_video
from tests.chaos.checker import (
    double_processing,
    last_frames,
    pauses,
    read_frames,
    segments,
    unprocessed,
)
from tests.fixtures.fleet import ControlPlane, WorkerProcess
from tests.fixtures.private_services import PrivatePostgres, PrivateRedis
from tests.fixtures.replica_set import keys_of, start_replicas
from tests.fixtures.services import unavailable
from tests.fixtures.tcp_proxy import TcpProxy
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.timeout(540)

LEASE_TTL = 4.0
FPS = 5
SETTINGS = {
    "FACEFLEET_HEARTBEAT_INTERVAL": "1.0",
    "FACEFLEET_LEASE_TTL": str(LEASE_TTL),
    "FACEFLEET_REAPER_PERIOD": "0.2",
    "FACEFLEET_FLUSH_PERIOD": "0.5",
    "FACEFLEET_RETRY_AFTER": "0.5",
    "FACEFLEET_FAILING_BACKOFF": "2",
    "FACEFLEET_FAILING_BACKOFF_MAX": "8",
    "FACEFLEET_ANTI_ENTROPY_EVERY": "10",
}
WORKERS = 6
CAMERAS = 4
# A camera whose processing pauses for longer than this counts as not processed.
GAP = 1.0
# Every camera must be processed again within this long after a fault ends: a lease TTL
# and a few seconds for the reaper, a camera request and a first frame.
RECOVERY_TARGET = 10.0
# A fault may take this long after its end to show (a silent worker loses its cameras a
# lease TTL after its last heartbeat).
SETTLE = LEASE_TTL + 1.5
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


@dataclass
class Fault:
    name: str
    injected_at: float
    ended_at: float = 0.0
    longest_pause: float = 0.0  # the longest a camera went unprocessed because of it
    back_after_end: float = 0.0  # from its end until every camera was processed again


@dataclass
class Fleet:
    tmp: Path
    replicas: list[ControlPlane]
    proxy: TcpProxy
    postgres: PrivatePostgres
    redis: PrivateRedis
    workers: dict[str, WorkerProcess]
    admin: httpx.Client
    frame_log: Path
    cameras: dict[int, str] = field(default_factory=dict)  # id -> source URL
    commands: list[tuple[str, int]] = field(default_factory=list)  # (worker_id, id)
    sighting_ids: set[int] = field(default_factory=set)

    def camera_states(self) -> dict[int, dict[str, Any]]:
        try:
            resp = self.admin.get("/v1/cameras", params={"limit": 100})
        except httpx.HTTPError:
            return {}
        if resp.status_code != 200:
            return {}
        return {c["id"]: c for c in resp.json()["items"]}

    def all_streaming(self) -> bool:
        states = self.camera_states()
        return len(states) == CAMERAS and all(c["state"] == "streaming" for c in states.values())

    def processed_since(self, since: float) -> bool:
        """Every camera had a frame processed after ``since`` (by the frame records)."""
        if not self.frame_log.exists():
            return False
        latest = last_frames(self.frame_log)
        return all(latest.get(camera, 0.0) > since for camera in self.cameras)

    def holders(self) -> dict[int, str]:
        return {cid: c["worker_id"] for cid, c in self.camera_states().items() if c["worker_id"]}

    def note_sightings(self) -> None:
        with_retries(lambda: self._note_sightings())

    def _note_sightings(self) -> None:
        resp = self.admin.get("/v1/sightings", params={"limit": 1000})
        resp.raise_for_status()
        self.sighting_ids.update(item["id"] for item in resp.json()["items"])

    def send_command(self, rng: random.Random) -> None:
        worker_id = rng.choice(sorted(self.workers))
        body = {
            "type": "set_config",
            "payload": {"heartbeat_jitter": 0.1},
            "idempotency_key": f"chaos-{len(self.commands)}",
            "ttl_seconds": 900,
        }

        def send() -> None:
            resp = self.admin.post(f"/v1/workers/{worker_id}/commands", json=body)
            assert resp.status_code in (200, 201), resp.text
            self.commands.append((worker_id, resp.json()["id"]))

        with_retries(send)


def with_retries(call: Callable[[], None], within: float = 30.0) -> None:
    """An operator's call, retried while the control plane is briefly unavailable."""
    deadline = time.monotonic() + within
    while True:
        try:
            call()
            return
        except (httpx.HTTPError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def postgres_processes(pg: PrivatePostgres) -> list[psutil.Process]:
    pid = int((pg.datadir / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    return [postmaster, *postmaster.children(recursive=True)]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    if not LIBFAKETIME.exists():
        unavailable("libfaketime", FileNotFoundError(str(LIBFAKETIME)))
    postgres = PrivatePostgres()
    redis = PrivateRedis(tmp_path / "redis")
    replicas: list[ControlPlane] = []
    workers: dict[str, WorkerProcess] = {}
    proxy: TcpProxy | None = None
    admin: httpx.Client | None = None
    try:
        postgres.start()
        redis.start()
        replicas = start_replicas(tmp_path, postgres.url(), redis.url, "chaos:", env=SETTINGS)
        proxy = TcpProxy([r.port for r in replicas]).start()
        keys = keys_of(tmp_path)
        frame_log = tmp_path / "frames.log"
        admin = httpx.Client(
            base_url=proxy.url, headers={"Authorization": f"Bearer {keys['admin']}"}, timeout=10
        )
        faces = make_face_video(tmp_path / "face.avi", seconds=6, fps=15)
        shapes = make_demo_video(tmp_path / "shapes.avi", seconds=8, fps=15, size=(320, 180))
        running = Fleet(tmp_path, replicas, proxy, postgres, redis, workers, admin, frame_log)
        for i, video in enumerate([faces, faces, shapes, shapes]):
            url = f"file://{video}"
            resp = admin.post(
                "/v1/cameras", json={"name": f"cam-{i}", "source_url": url, "target_fps": FPS}
            )
            assert resp.status_code == 201, resp.text
            running.cameras[resp.json()["id"]] = url
        for i in range(WORKERS):
            worker_id = f"w{i}"
            workers[worker_id] = WorkerProcess(
                worker_id,
                replicas[0],
                tmp_path,
                env={
                    "FACEFLEET_WORKER_API_URL": proxy.url,
                    "FACEFLEET_WORKER_FRAME_LOG": str(frame_log),
                    "FACEFLEET_WORKER_STREAM_START_TIMEOUT": "4",
                    "FACEFLEET_WORKER_CAPACITY": "1",
                    "FACEFLEET_WORKER_FACE_PROCESSES": "1",
                    "FACEFLEET_WORKER_STREAM_STALL_TIMEOUT": "8",
                },
            ).start()
        yield running
    finally:
        for worker in workers.values():
            worker.stop()
        if admin is not None:
            admin.close()
        if proxy is not None:
            proxy.stop()
        for plane in replicas:
            plane.stop(signal.SIGKILL)
        redis.stop()
        for process in postgres_processes(postgres) if postgres.initialized else []:
            process.send_signal(signal.SIGCONT)
        postgres.destroy()


# -- the faults -----------------------------------------------------------------------------


def holder(fleet: Fleet, rng: random.Random) -> WorkerProcess:
    held = sorted(set(fleet.holders().values()) & set(fleet.workers)) or sorted(fleet.workers)
    return fleet.workers[rng.choice(held)]


def restarting(worker: WorkerProcess) -> Callable[[], None]:
    """Run once every camera streams again: the fleet gets its worker back."""

    def restart() -> None:
        worker.start()

    return restart


def kill9_worker(fleet: Fleet, rng: random.Random) -> Callable[[], None]:
    worker = holder(fleet, rng)
    worker.signal(signal.SIGKILL)
    worker.wait(10)
    return restarting(worker)


def sigterm_worker(fleet: Fleet, rng: random.Random) -> Callable[[], None]:
    worker = holder(fleet, rng)
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.log()[-3000:]
    return restarting(worker)


def sigstop_worker(fleet: Fleet, rng: random.Random) -> Callable[[], None]:
    worker = holder(fleet, rng)
    worker.signal(signal.SIGSTOP)
    time.sleep(LEASE_TTL + 2)  # its cameras are handed on meanwhile
    worker.signal(signal.SIGCONT)
    return lambda: None


def kill9_replica(fleet: Fleet, rng: random.Random) -> Callable[[], None]:
    replica = rng.choice(fleet.replicas)
    replica.stop(signal.SIGKILL)
    time.sleep(1)
    replica.start()
    return lambda: None


def restart_redis(fleet: Fleet, rng: random.Random) -> Callable[[], None]:
    fleet.redis.kill()
    time.sleep(1)
    fleet.redis.start()  # empty: replicas replay the database into it
    return lambda: None


def sigstop_postgres(fleet: Fleet, rng: random.Random) -> Callable[[], None]:
    processes = postgres_processes(fleet.postgres)
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    time.sleep(rng.uniform(3, 5))
    for process in processes:
        process.send_signal(signal.SIGCONT)
    return lambda: None


def skew_replica_clock(fleet: Fleet, rng: random.Random) -> Callable[[], None]:
    # libfaketime cannot step the clock of a running process without stepping its monotonic
    # clock too (real clock steps never do): the replica restarts with its wall clock off.
    replica = rng.choice(fleet.replicas)
    replica.stop()
    replica.env.update({"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": rng.choice(["+5s", "-5s"])})
    replica.start()
    return lambda: None


def unopenable_url(fleet: Fleet, rng: random.Random) -> Callable[[], None]:
    camera_id = rng.choice(sorted(fleet.cameras))
    broken = f"rtsp://127.0.0.1:{closed_port()}/gone"
    with_retries(lambda: _patch(fleet, camera_id, broken))
    wait_for(
        lambda: fleet.camera_states().get(camera_id, {}).get("state") == "failing",
        30,
        f"camera {camera_id} to be failing",
    )
    with_retries(lambda: _patch(fleet, camera_id, fleet.cameras[camera_id]))
    return lambda: None


def flaky_load_balancer(fleet: Fleet, rng: random.Random) -> Callable[[], None]:
    # For ten seconds the load balancer between workers and replicas cuts connections at
    # random: some on both sides, some only on the replica's side, the worker's left open
    # and silent (the replica sees its presence stream end; the worker hears nothing).
    dropped, silenced = fleet.proxy.dropped, fleet.proxy.silenced
    end = time.monotonic() + 10
    while time.monotonic() < end:
        time.sleep(rng.uniform(0.2, 1.0))
        if rng.random() < 0.5:
            fleet.proxy.drop_some(rng, 0.5)
        else:
            fleet.proxy.silence_some(rng, 0.5)
    assert fleet.proxy.dropped > dropped and fleet.proxy.silenced > silenced
    # Then it restarts: no silent connection outlives the fault (the checker's own included).
    fleet.proxy.drop()
    return lambda: None


def _patch(fleet: Fleet, camera_id: int, url: str) -> None:
    resp = fleet.admin.patch(f"/v1/cameras/{camera_id}", json={"source_url": url})
    assert resp.status_code == 200, resp.text


FAULTS: dict[str, Callable[[Fleet, random.Random], Callable[[], None]]] = {
    "kill -9 a worker": kill9_worker,
    "SIGTERM a worker": sigterm_worker,
    "SIGSTOP a worker past its lease": sigstop_worker,
    "kill -9 a replica and restart it": kill9_replica,
    "restart redis-server": restart_redis,
    "SIGSTOP PostgreSQL": sigstop_postgres,
    "a replica's clock 5 s off": skew_replica_clock,
    "a URL no worker can open": unopenable_url,
    "a load balancer dropping connections": flaky_load_balancer,
}


# -- the run --------------------------------------------------------------------------------


def stale_sightings(fleet: Fleet) -> tuple[int, int]:
    """(sightings accepted under an epoch older than one accepted before for that camera,
    sightings in all)."""

    async def query() -> list[tuple[int, int]]:
        engine = create_async_engine(fleet.postgres.url())
        try:
            async with engine.connect() as conn:
                result = await conn.execute(
                    text("SELECT camera_id, epoch FROM sightings ORDER BY id")
                )
                return [(int(c), int(e)) for c, e in result.all()]
        finally:
            await engine.dispose()

    rows = asyncio.run(query())
    newest: dict[int, int] = {}
    stale = 0
    for camera_id, epoch in rows:
        if epoch < newest.get(camera_id, 0):
            stale += 1
        newest[camera_id] = max(epoch, newest.get(camera_id, 0))
    return stale, len(rows)


def test_the_fleet_keeps_its_promises_under_chaos(fleet: Fleet) -> None:
    seed = int(os.environ.get("FACEFLEET_CHAOS_SEED") or random.SystemRandom().randrange(10**6))
    rng = random.Random(seed)
    print(f"\nchaos seed {seed} (replay: FACEFLEET_CHAOS_SEED={seed})")
    wait_for(fleet.all_streaming, 180, "every camera to stream")
    started = time.time()
    order = list(FAULTS)
    rng.shuffle(order)
    faults: list[Fault] = []
    for name in order:
        fleet.send_command(rng)
        fault = Fault(name, time.time())
        restore = FAULTS[name](fleet, rng)
        fault.ended_at = time.time()
        # What a fault does may take a lease TTL to show (a silent worker's cameras move
        # only then): every camera must be processed again after that.
        settled = fault.ended_at + SETTLE
        wait_for(
            lambda: fleet.processed_since(settled),  # noqa: B023
            SETTLE + RECOVERY_TARGET + 30,
            f"every camera processed again after {name}",
        )
        restore()
        faults.append(fault)
        fleet.note_sightings()
        time.sleep(1)
    fleet.send_command(rng)
    final = time.time()
    wait_for(lambda: fleet.processed_since(final + SETTLE), 90, "every camera at the end")
    ended = time.time()

    # Every command an operator was told exists gets acknowledged: none is lost.
    pending = wait_commands(fleet)
    fleet.note_sightings()
    for worker in fleet.workers.values():
        worker.signal(signal.SIGTERM)
    for worker in fleet.workers.values():
        worker.wait(30)

    frames = read_frames(fleet.frame_log)
    runs = segments(frames, GAP)
    cameras = sorted(fleet.cameras)
    for fault in faults:
        paused = pauses(runs, cameras, fault.injected_at - GAP, fault.ended_at + SETTLE, GAP)
        for at, resumed in paused.values():
            fault.longest_pause = max(fault.longest_pause, resumed - at)
            fault.back_after_end = max(fault.back_after_end, resumed - fault.ended_at)
    overlaps = double_processing(runs)
    stale, sightings = stale_sightings(fleet)
    listed = fleet.admin.get("/v1/sightings", params={"limit": 1000}).json()["items"]
    kept = {item["id"] for item in listed}
    lost_sightings = sorted(fleet.sighting_ids - kept)
    report = {
        "seed": seed,
        "faults": [
            {
                "fault": f.name,
                "at_s": round(f.injected_at - started, 1),
                "lasted_s": round(f.ended_at - f.injected_at, 2),
                "longest_pause_s": round(f.longest_pause, 2),
                "processed_again_after_it_ended_s": round(max(0.0, f.back_after_end), 2),
            }
            for f in faults
        ],
        "camera_seconds_double_processed": round(sum(overlaps.values()), 3),
        "sightings_under_a_stale_epoch": stale,
        "sightings": sightings,
        "acknowledged_sightings_lost": len(lost_sightings),
        "commands": len(fleet.commands),
        "acknowledged_commands_lost": len(pending),
        "camera_seconds_unprocessed": round(unprocessed(runs, cameras, started, ended), 1),
        "camera_seconds_observed": round((ended - started) * len(cameras), 1),
        "frames": len(frames),
    }
    (fleet.tmp / "chaos-report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    assert overlaps == {}, f"cameras processed by two workers at once: {overlaps}"
    assert stale == 0
    assert lost_sightings == []
    assert pending == []
    assert sightings > 0 and len(frames) > 0
    for fault in faults:
        assert fault.back_after_end <= RECOVERY_TARGET, fault


def wait_commands(fleet: Fleet, within: float = 60.0) -> list[tuple[str, int]]:
    """Commands not acknowledged after ``within`` seconds."""
    deadline = time.monotonic() + within
    pending = list(fleet.commands)
    while pending and time.monotonic() < deadline:
        pending = [c for c in pending if _status(fleet, *c) not in ("acked", "failed")]
        if pending:
            time.sleep(1)
    return pending


def _status(fleet: Fleet, worker_id: str, command_id: int) -> str | None:
    try:
        resp = fleet.admin.get(f"/v1/workers/{worker_id}/commands/{command_id}")
    except httpx.HTTPError:
        return None
    return str(resp.json()["status"]) if resp.status_code == 200 else None

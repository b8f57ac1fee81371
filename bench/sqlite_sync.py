"""What SQLite's synchronous=FULL (the default: an acknowledged commit survives a power loss)
costs the control plane's writes, as a ratio to NORMAL (the last commits may be lost)
measured in the same run.

Each write is a request to the real app (in this process, over ASGI, one at a time, so each
is one commit and nothing hides its sync): a worker's registration, a camera's creation
(its source URL encrypted) and a batch of five sightings under a camera lease; and, for
scale, a bare commit of one history row through the repository (no target). Every round
gives each level a fresh database in the same directory, the order of the levels reversed
every other round; each round's figure is the ratio of the two levels' median latencies, and
the result is the median of the rounds' ratios (the spread of rounds is printed beside it).
The directory must be on the disk the database would live on (a tmpfs syncs nothing).

    .venv/bin/python bench/sqlite_sync.py
    .venv/bin/python bench/sqlite_sync.py --quick --dir /var/lib/facefleet-bench
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from benchlib import cli
from benchlib.api import add_camera, register, request_camera
from benchlib.clients import worker_headers
from benchlib.processes import BenchError
from benchlib.report import Column, Table
from benchlib.servers import ENCRYPTION_KEYS
from benchlib.stats import interleaved, ratio
from benchlib.targets import Target, Targets
from facefleet.api.app import create_app
from facefleet.api.config import Settings
from facefleet.api.security import Role
from facefleet.api.state import AppState
from facefleet.api.storage.db import events_repo
from facefleet.api.tenants.service import create_tenant

BASE = "http://facefleet"
BASELINE, MEASURED = "NORMAL", "FULL"
WRITES = ("register", "camera", "sightings", "commit")
# The requests have a target; the bare commit shows what the sync costs on its own.
TARGETS = tuple(
    Target(
        f"ratio_{write}",
        f"{write} latency with FULL / with NORMAL",
        "<=",
        None if write == "commit" else 2.0,
    )
    for write in WRITES
)


def parse_args(argv: list[str] | None, targets: Targets) -> argparse.Namespace:
    parser = cli.parser(__doc__, targets, "2 rounds of 50 writes of each kind")
    parser.add_argument("--rounds", type=int, help="rounds per level (5)")
    parser.add_argument("--writes", type=int, help="writes of each kind per round (200)")
    parser.add_argument("--dir", type=Path, help="where the databases go (a temporary directory)")
    args = cli.parse(parser, targets, argv)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.writes = args.writes or (50 if args.quick else 200)
    return args


async def timed(count: int, write: Callable[[int], Awaitable[object]]) -> float:
    """The median seconds of ``count`` writes, one after the other."""
    seconds = []
    for i in range(count):
        started = time.perf_counter()
        resp = await write(i)
        seconds.append(time.perf_counter() - started)
        if isinstance(resp, httpx.Response) and resp.is_error:
            raise BenchError(f"a write was refused: {resp.status_code} {resp.text[:200]}")
    return statistics.median(seconds)


def sighting(track: str) -> dict[str, Any]:
    now = time.time()
    return {
        "track_id": track,
        "person_id": None,
        "first_seen": now - 2,
        "last_seen": now,
        "best_distance": None,
        "frames": 9,
    }


async def measure(level: str, workdir: Path, writes: int) -> dict[str, float]:
    """Median seconds of each kind of write on a fresh database at ``level``."""
    data = workdir / f"{level}-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=data,
        database_url=f"sqlite+aiosqlite:///{data / 'facefleet.db'}",
        sqlite_synchronous=level,
        encryption_keys=ENCRYPTION_KEYS,
        bootstrap_default_tenant=False,
        run_background=False,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state: AppState = app.state.facefleet
        async with state.sessions() as session:
            tenant = await create_tenant(session, "bench")
            await session.commit()
        admin, worker = tenant.keys[Role.admin], tenant.keys[Role.worker]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            await add_camera(client, BASE, admin, 0)
            token = await register(client, BASE, worker, "reporter")
            lease = await request_camera(client, BASE, worker, "reporter", token)
            if lease is None:
                raise BenchError("the reporter got no camera")

            async def registration(i: int) -> httpx.Response:
                body = {"worker_id": f"w-{i:05d}", "instance_id": uuid.uuid4().hex}
                return await client.post(
                    "/v1/workers/register", json=body, headers={"Authorization": f"Bearer {worker}"}
                )

            async def camera(i: int) -> httpx.Response:
                body = {"name": f"c-{i:05d}", "source_url": f"rtsp://u:pw{i}@10.0.0.{i % 250}/s"}
                return await client.post(
                    "/v1/cameras", json=body, headers={"Authorization": f"Bearer {admin}"}
                )

            async def sightings(i: int) -> httpx.Response:
                body = {
                    "camera_id": lease["camera_id"],
                    "epoch": lease["epoch"],
                    "sightings": [sighting(f"t{i}-{k}") for k in range(5)],
                }
                return await client.post(
                    "/v1/workers/reporter/sightings",
                    json=body,
                    headers=worker_headers(worker, token),
                )

            async def commit(i: int) -> None:
                async with state.sessions() as session:
                    events_repo.record(session, tenant.id, None, "bench", round=i)
                    await session.commit()

            return {
                "register": await timed(writes, registration),
                "camera": await timed(writes, camera),
                "sightings": await timed(writes, sightings),
                "commit": await timed(writes, commit),
            }


def fsync_latency(directory: Path, count: int = 200) -> float:
    """Median seconds of a 4 KiB write and fsync in ``directory``: what the disk charges a
    synced commit (a few milliseconds on a spinning disk, nothing on tmpfs)."""
    path = directory / "fsync-probe"
    seconds = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
            seconds.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    targets = Targets(*TARGETS)
    args = parse_args(argv, targets)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        workdir = Path(tmp)
        fsync = fsync_latency(workdir)
        print(
            f"databases in {workdir} (a 4 KiB write + fsync there: {fsync * 1000:.2f} ms); "
            f"{args.rounds} rounds of {args.writes} writes of each kind"
        )

        def side(level: str) -> Callable[[], dict[str, float]]:
            return lambda: asyncio.run(measure(level, workdir, args.writes))

        rounds = interleaved({level: side(level) for level in (BASELINE, MEASURED)}, args.rounds)
    # Each round's two levels ran next to each other: their ratio shares the machine's
    # load of the moment, which the medians of separate rounds would not.
    ratios = {
        write: [
            ratio(full[write], normal[write])
            for normal, full in zip(rounds[BASELINE], rounds[MEASURED], strict=True)
        ]
        for write in WRITES
    }
    medians = {
        level: {write: statistics.median(r[write] for r in results) for write in WRITES}
        for level, results in rounds.items()
    }
    table = Table(
        Column("write", 12),
        Column(f"{BASELINE} ms", 12, ".2f"),
        Column(f"{MEASURED} ms", 12, ".2f"),
        Column("ratio", 8, ".2f"),
        Column("rounds", 14),
    )
    print(table.header())
    for write in WRITES:
        value = statistics.median(ratios[write])
        verdict = targets.check(f"ratio_{write}", value)
        row = table.row(
            write,
            medians[BASELINE][write] * 1000,
            medians[MEASURED][write] * 1000,
            value,
            f"{min(ratios[write]):.2f}-{max(ratios[write]):.2f}",
        )
        print(f"{row}   {verdict}")
    payload = {
        "rounds": args.rounds,
        "writes": args.writes,
        "fsync_seconds": fsync,
        "median_seconds": medians,
        "round_ratios": ratios,
    }
    return cli.finish(targets, payload, args.json_path)


if __name__ == "__main__":
    sys.exit(cli.run(main))

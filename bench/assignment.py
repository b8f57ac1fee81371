"""Camera assignment at fleet scale: the latency of choosing and claiming the best free camera
at 100,000 free cameras, as a ratio to the same with 100 (same run, same database).

Each claim is the control plane's own transaction: lock the worker row, choose the best
free camera (sticky first, then priority, then waiting longest, skipping locked rows),
claim it with a compare-and-set; then a release gives it back. The cameras have a spread of
priorities, a tenth of them require a label the worker has, and a few are held for another
worker, so the choice has filters to pass. Both SQLite and PostgreSQL are measured.

    .venv/bin/python bench/assignment.py
    .venv/bin/python bench/assignment.py --databases postgresql --sizes 100 100000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from benchlib import cli
from benchlib.servers import ENCRYPTION_KEYS
from benchlib.stats import ratio
from benchlib.storage import PG_ADMIN_URL, _pg_admin
from benchlib.targets import Target, Targets
from facefleet.api.database import parse_keys
from facefleet.api.storage.db import leases_repo
from facefleet.api.storage.db.encryption import bind_cipher
from facefleet.api.storage.db.engine import create_engine, create_sessionmaker
from facefleet.api.storage.db.migrate import upgrade
from facefleet.api.storage.db.models import (
    Camera,
    CameraLease,
    CameraRequiredLabel,
    Tenant,
    Worker,
)

TARGETS = (
    Target("ratio_sqlite", "claim latency at the largest size / smallest, SQLite", "<=", 1.5),
    Target(
        "ratio_postgresql", "claim latency at the largest size / smallest, PostgreSQL", "<=", 1.5
    ),
)
CHUNK = 5_000


def parse_args(argv: list[str] | None, targets: Targets) -> argparse.Namespace:
    parser = cli.parser(__doc__, targets, "10,000 cameras instead of 100,000, 100 claims")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"))
    parser.add_argument("--claims", type=int, help="claims timed per size (400)")
    args = cli.parse(parser, targets, argv)
    args.sizes = args.sizes or ([100, 10_000] if args.quick else [100, 100_000])
    args.claims = args.claims or (100 if args.quick else 400)
    return args


async def populate(engine: AsyncEngine, cameras: int) -> tuple[str, int, int]:
    """A tenant with ``cameras`` cameras; (tenant id, the worker's pk, another worker's pk)."""
    rng = random.Random(cameras)
    tenant_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(insert(Tenant), [{"id": tenant_id, "name": "bench"}])
        workers = await conn.execute(
            insert(Worker).returning(Worker.id),
            [
                {"tenant_id": tenant_id, "worker_id": name, "labels": ["lobby"], "capacity": 1}
                for name in ("taker", "other")
            ],
        )
        taker, other = [row[0] for row in workers]
        for start in range(0, cameras, CHUNK):
            rows = [
                {
                    "tenant_id": tenant_id,
                    "name": f"cam-{i}",
                    "source_url": f"rtsp://10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}/s",
                    "priority": rng.randrange(5),
                }
                for i in range(start, min(cameras, start + CHUNK))
            ]
            ids = [r[0] for r in await conn.execute(insert(Camera).returning(Camera.id), rows)]
            await conn.execute(
                insert(CameraLease),
                [
                    {
                        "camera_id": camera_id,
                        "tenant_id": tenant_id,
                        "priority": row["priority"],
                        "waiting_since": now - timedelta(seconds=rng.random() * 3600),
                        # A few are held for another worker that may still stream them.
                        "revoked_until": now + timedelta(hours=1) if rng.random() < 0.01 else None,
                    }
                    for camera_id, row in zip(ids, rows, strict=True)
                ],
            )
            labelled = [{"camera_id": c, "label": "lobby"} for c in ids if rng.random() < 0.1]
            if labelled:
                await conn.execute(insert(CameraRequiredLabel), labelled)
        if engine.dialect.name == "postgresql":
            await conn.execute(text("ANALYZE"))
    return tenant_id, taker, other


async def claim_latency(engine: AsyncEngine, tenant_id: str, worker_pk: int, claims: int) -> float:
    """Median seconds per claim transaction."""
    sessions = create_sessionmaker(engine)
    timings = []
    for _ in range(claims):
        now = datetime.now(UTC)
        start = time.perf_counter()
        async with sessions() as session:
            await leases_repo.lock_worker(session, worker_pk)
            claimed = await leases_repo.claim_free_camera(
                session, tenant_id=tenant_id, worker_pk=worker_pk, worker_labels=["lobby"], now=now
            )
            await session.commit()
        timings.append(time.perf_counter() - start)
        assert claimed is not None, "no free camera found"
        camera, epoch = claimed
        async with sessions() as session:
            await leases_repo.release(session, camera.id, worker_pk, epoch, now)
            await session.commit()
    return statistics.median(timings)


async def measure(database: str, size: int, claims: int, workdir: Path) -> float:
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / f'assign-{size}.db'}"
        name = None
    else:
        name = f"facefleet_bench_{uuid.uuid4().hex[:12]}"
        await _pg_admin(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    cipher = parse_keys(ENCRYPTION_KEYS)
    engine = create_engine(url, cipher=cipher)
    try:
        await upgrade(engine)
        loader = create_async_engine(url) if database == "postgresql" else engine
        bind_cipher(loader, cipher)
        tenant_id, taker, _ = await populate(loader, size)
        if loader is not engine:
            await loader.dispose()
        await claim_latency(engine, tenant_id, taker, 20)  # warm caches and plans
        return await claim_latency(engine, tenant_id, taker, claims)
    finally:
        await engine.dispose()
        if name is not None:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    targets = Targets(*TARGETS)
    args = parse_args(argv, targets)
    small, large = args.sizes
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for database in args.databases:
            base = asyncio.run(measure(database, small, args.claims, Path(tmp)))
            big = asyncio.run(measure(database, large, args.claims, Path(tmp)))
            value = ratio(big, base)
            verdict = targets.check(f"ratio_{database}", value)
            print(
                f"{database}: {base * 1000:.2f} ms per claim at {small:,} free cameras, "
                f"{big * 1000:.2f} ms at {large:,}: ratio {value:.2f} ({verdict})"
            )
            results[database] = {"small_ms": base * 1000, "large_ms": big * 1000}
    return cli.finish(targets, {"sizes": args.sizes, "results": results}, args.json_path)


if __name__ == "__main__":
    sys.exit(cli.run(main))

"""Fresh storage for one benchmark configuration: a new SQLite file, or a new PostgreSQL
database and Redis key prefix on the machine's servers, both removed afterwards (the
prefix's keys by SCAN and DEL, never a flush)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from benchlib.servers import sqlite_url

PG_ADMIN_URL = os.environ.get(
    "FACEFLEET_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FACEFLEET_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
Kind = Literal["embedded", "shared"]


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
def storage(kind: Kind, workdir: Path) -> Iterator[dict[str, str]]:
    """Control-plane settings (lower-case names) for fresh storage of ``kind``."""
    if kind == "embedded":
        yield {"database_url": sqlite_url(workdir / "bench.db")}
        return
    name = f"facefleet_bench_{uuid.uuid4().hex[:12]}"
    prefix = f"facefleet-bench:{uuid.uuid4().hex[:12]}:"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield {
            "database_url": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name,
            "redis_url": REDIS_URL,
            "redis_prefix": prefix,
        }
    finally:
        asyncio.run(_delete_prefix(prefix))
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

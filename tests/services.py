"""Access to the machine's PostgreSQL and Redis for tests: skip with a reason when absent,
fail instead when FACEFLEET_TEST_REQUIRE_SERVICES=1 (as in CI)."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

PG_ADMIN_URL = os.environ.get(
    "FACEFLEET_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FACEFLEET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Every key a test writes starts with this; teardown deletes only its own test's keys.
REDIS_TEST_PREFIX = "facefleet-test:"
REQUIRE = os.environ.get("FACEFLEET_TEST_REQUIRE_SERVICES") == "1"


def unavailable(what: str, exc: BaseException) -> None:
    reason = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if REQUIRE:
        pytest.fail(f"{reason}; FACEFLEET_TEST_REQUIRE_SERVICES=1 requires it")
    pytest.skip(reason)


async def _admin(sql: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def create_pg_database() -> str:
    """A fresh database of our own; returns its async URL."""
    name = f"facefleet_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(asyncio.wait_for(_admin(f'CREATE DATABASE "{name}"'), 10))
    except Exception as exc:
        unavailable("PostgreSQL at " + PG_ADMIN_URL, exc)
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    assert name.startswith("facefleet_test_"), "only databases this suite created are dropped"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _redis_ping(url: str) -> None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        await client.ping()
    finally:
        await client.aclose()


def create_redis_prefix() -> str:
    """A key prefix of our own in the machine's Redis (nothing else in it is touched)."""
    try:
        asyncio.run(asyncio.wait_for(_redis_ping(REDIS_URL), 10))
    except Exception as exc:
        unavailable("Redis at " + REDIS_URL, exc)
    return f"{REDIS_TEST_PREFIX}{uuid.uuid4().hex[:12]}:"


async def _delete_prefixed(url: str, prefix: str) -> int:
    client = aioredis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += await client.delete(*batch)
                batch = []
        if batch:
            deleted += await client.delete(*batch)
    finally:
        await client.aclose()
    return deleted


def delete_redis_prefix(prefix: str, url: str = REDIS_URL) -> int:
    """Delete the keys under a prefix this suite made (SCAN MATCH + DEL, never a flush)."""
    assert prefix.startswith(REDIS_TEST_PREFIX) and len(prefix) > len(REDIS_TEST_PREFIX) + 8, (
        "only prefixes this suite created are deleted"
    )
    return asyncio.run(_delete_prefixed(url, prefix))

"""Access to the machine's PostgreSQL and Redis for tests: skip with a reason when absent,
fail instead when FACEFLEET_TEST_REQUIRE_SERVICES=1 (as in CI)."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

PG_ADMIN_URL = os.environ.get(
    "FACEFLEET_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
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

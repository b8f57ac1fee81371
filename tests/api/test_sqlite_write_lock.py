"""A SQLite connection that goes away mid-transaction takes the database's write lock with
it: a task cancelled mid-query (a stopping control plane, a request's timeout) must not
leave every later writer waiting out the busy timeout."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from facefleet.api.storage.db.engine import create_engine, create_sessionmaker


def write_lock_is_free(path: Path) -> bool:
    other = sqlite3.connect(path, timeout=1.0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        other.close()


async def table(path: Path) -> str:
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS t (v INTEGER)"))
        await conn.execute(text("INSERT INTO t VALUES (1), (2), (3)"))
    await engine.dispose()
    return url


async def test_an_invalidated_connection_with_a_live_query_frees_the_write_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lock.db"
    engine = create_engine(await table(path))
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t VALUES (4)"))  # BEGIN IMMEDIATE: the lock
        rows = await conn.stream(text("SELECT v FROM t"))
        assert len(await rows.fetchmany(1)) == 1  # a statement still live
        await conn.invalidate()
        assert await asyncio.to_thread(write_lock_is_free, path)
    await engine.dispose()
    # The invalidated transaction was rolled back, not committed.
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM t").fetchone() == (3,)
    check.close()


async def test_writers_cancelled_at_random_points_leave_the_lock_free(tmp_path: Path) -> None:
    path = tmp_path / "lock.db"
    url = await table(path)

    async def write(sessions: async_sessionmaker[AsyncSession]) -> None:
        while True:
            async with sessions() as session:
                await session.execute(text("INSERT INTO t VALUES (5)"))
                await asyncio.sleep(0)
                await session.execute(text("SELECT count(*) FROM t"))
                await session.commit()

    rng = random.Random(7)
    for _ in range(30):
        engine = create_engine(url)
        sessions = create_sessionmaker(engine)
        writers = [asyncio.create_task(write(sessions)) for _ in range(4)]
        await asyncio.sleep(rng.uniform(0.005, 0.03))
        for writer in writers:
            writer.cancel()
        # The cancelled tasks, their tracebacks and the cursors in them stay referenced.
        results = await asyncio.gather(*writers, return_exceptions=True)
        await engine.dispose()
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert await asyncio.to_thread(write_lock_is_free, path)

"""Apply Alembic migrations on an async engine (at start-up and by ``facefleet db upgrade``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")
# Replicas starting together must not migrate concurrently.
PG_MIGRATION_LOCK = 0x0FACEF1E


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(sync_connection: Any, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_connection
    command.upgrade(cfg, revision)


async def _sqlite_foreign_keys(conn: AsyncConnection, on: bool) -> None:
    """Outside any transaction (the pragma is ignored inside one): a migration that rebuilds
    a table must not have the old table's drop cascade to the rows that refer to it."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_MIGRATION_LOCK})
            await conn.commit()
        if sqlite:
            await _sqlite_foreign_keys(conn, on=False)
        try:
            await conn.run_sync(_upgrade, revision)
            await conn.commit()
            if sqlite:
                broken = (await conn.execute(text("PRAGMA foreign_key_check"))).all()
                await conn.commit()
                if broken:
                    raise RuntimeError(f"migration left broken references: {broken[:5]}")
        finally:
            if sqlite:
                await _sqlite_foreign_keys(conn, on=True)
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_MIGRATION_LOCK})
                await conn.commit()

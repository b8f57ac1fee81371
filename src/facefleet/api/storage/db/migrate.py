"""Apply Alembic migrations on an async engine (at start-up and by ``facefleet db upgrade``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

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


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_MIGRATION_LOCK})
            await conn.commit()
        try:
            await conn.run_sync(_upgrade, revision)
            await conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_MIGRATION_LOCK})
                await conn.commit()

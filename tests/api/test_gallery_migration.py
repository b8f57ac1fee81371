"""Migration 0008 on SQLite and PostgreSQL: the schema it builds is the models' schema, it
keeps the data already there (unknown faces join the stranger queue), and it downgrades."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import TextClause, bindparam, inspect, text

from facefleet.api.database import parse_keys
from facefleet.api.storage.db.engine import create_engine
from facefleet.api.storage.db.migrate import alembic_config, upgrade
from facefleet.api.storage.db.models import Base, UTCDateTime
from tests.fixtures.harness import ENCRYPTION_KEYS

NOW = datetime(2030, 1, 1, tzinfo=UTC)
NEVER_REUSED = {"sightings", "strangers", "negative_examples", "gallery_audit"}


async def sqlite_autoincrement(conn: Any) -> set[str]:
    """The SQLite tables whose ids are never handed out again."""
    rows = await conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    return {name for name, ddl in rows if "AUTOINCREMENT" in (ddl or "")}


def sql(statement: str) -> TextClause:
    return text(statement).bindparams(bindparam("now", type_=UTCDateTime()))


def _downgrade(sync_connection: Any, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_connection
    command.downgrade(cfg, revision)


def _differences(sync_connection: Any) -> list[Any]:
    context = MigrationContext.configure(sync_connection)
    found = list(compare_metadata(context, Base.metadata))
    if sync_connection.dialect.name != "sqlite":
        return found

    # SQLite's reflection drops an index column's sort order ("priority DESC" comes back as
    # "priority"): an index whose columns differ only by that is the same index.
    def columns(index: Any) -> list[str]:
        return [str(e).split(".")[-1].removesuffix(" DESC") for e in index.expressions]

    removed = {d[1].name: columns(d[1]) for d in found if d[0] == "remove_index"}
    same = {
        d[1].name for d in found if d[0] == "add_index" and removed.get(d[1].name) == columns(d[1])
    }
    return [d for d in found if not (d[0] in ("add_index", "remove_index") and d[1].name in same)]


async def test_the_migration_builds_the_models_schema_and_keeps_data(empty_database: str) -> None:
    engine = create_engine(empty_database, cipher=parse_keys(ENCRYPTION_KEYS))
    try:
        await upgrade(engine, "0007")
        async with engine.begin() as conn:
            await conn.execute(
                sql("INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', :now)"),
                {"now": NOW},
            )
            await conn.execute(
                sql(
                    "INSERT INTO cameras (tenant_id, name, source_url, enabled, target_fps, "
                    "priority, created_at, updated_at) VALUES ('t', 'c', 'rtsp://x/s', true, 5, 0, "
                    ":now, :now)"
                ),
                {"now": NOW},
            )
            camera = (await conn.execute(text("SELECT id FROM cameras"))).scalar_one()
            for track, crop in (("unknown", b"\xff\xd8\xff"), ("no-crop", None)):
                await conn.execute(
                    sql(
                        "INSERT INTO sightings (tenant_id, camera_id, epoch, track_id, "
                        "first_seen, last_seen, frames, crop, created_at) VALUES ('t', :cam, 1, "
                        ":track, :now, :now, 1, :crop, :now)"
                    ),
                    {"cam": camera, "track": track, "crop": crop, "now": NOW},
                )
        await upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
            rows = await conn.execute(text("SELECT track_id, clustering FROM sightings"))
            assert dict(rows.all()) == {"unknown": "pending", "no-crop": "done"}
            tenant = await conn.execute(text("SELECT match_ratio FROM tenants"))
            assert tenant.scalar_one() == pytest.approx(0.8)
            if empty_database.startswith("sqlite"):
                assert await sqlite_autoincrement(conn) >= NEVER_REUSED
        async with engine.connect() as conn:
            await conn.run_sync(_downgrade, "0007")
            await conn.commit()
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            assert "strangers" not in names and "negative_examples" not in names
            assert (await conn.execute(text("SELECT count(*) FROM sightings"))).scalar_one() == 2
        await upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await engine.dispose()

"""Async engine creation for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

from facefleet.api.storage.db.encryption import Cipher, bind_cipher

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "facefleet_read_only"
Synchronous = Literal["FULL", "NORMAL", "EXTRA"]
SYNCHRONOUS: tuple[Synchronous, ...] = ("FULL", "NORMAL", "EXTRA")


def create_engine(
    url: str,
    *,
    cipher: Cipher | None = None,
    sqlite_synchronous: Synchronous = "FULL",
    **kwargs: Any,
) -> AsyncEngine:
    """An engine of ``url``; ``cipher`` encrypts and decrypts its encrypted columns (without
    one, reading or writing them fails)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if sqlite_synchronous not in SYNCHRONOUS:
            raise ValueError(f"sqlite_synchronous must be one of {SYNCHRONOUS}")
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "factory": _SQLiteConnection}
        engine = create_async_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine, sqlite_synchronous)
    else:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_pre_ping", True)
        engine = create_async_engine(url, **kwargs)
    if cipher is not None:
        bind_cipher(engine, cipher)
    return engine


class _SQLiteConnection(sqlite3.Connection):
    def close(self) -> None:
        # A connection closed with a statement still live (a task cancelled mid-query, its
        # connection invalidated and closed) stays open in SQLite until that statement is
        # collected, its transaction and the database's write lock with it: every other
        # writer then waits out the busy timeout. Rolled back first, the lock goes now.
        try:
            if self.in_transaction:
                self.rollback()
        finally:
            super().close()


def _configure_sqlite(engine: AsyncEngine, synchronous: Synchronous) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control so every transaction can start with BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # FULL: a commit is on disk when it returns; NORMAL may lose the last ones on a
        # power loss (in WAL mode it syncs only at checkpoints).
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # The write lock is taken up front: two concurrent assignments serialize instead of
        # both reading "free" and one failing to upgrade its lock later. A read-only session
        # takes none: in WAL mode it never waits for a writer.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_sessionmaker(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions of ``engine``; ``read_only`` ones must not write (on SQLite they take no
    write lock, so a read never queues behind the writers)."""
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False)

"""What the worker must not lose when it fences itself or restarts, in its state directory:

- the sighting outbox: every sighting waits here until the control plane accepted it (or
  answered 409 for its epoch, the only reason to drop one), and is sent in order with the
  epoch it was seen under;
- the command ledger: what each command returned, so a command handed out again (at least
  once: until acknowledged) is acknowledged again, never executed twice.

One SQLite file per worker id. Calls are short local writes, made on the event loop.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    camera_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    track_id TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (camera_id, epoch, track_id)
);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    result TEXT NOT NULL,
    acked INTEGER NOT NULL DEFAULT 0,
    at REAL NOT NULL
);
"""
# Acknowledged commands are remembered this long (a command is handed out again only until
# its acknowledgement lands, or it expires: at most a day).
COMMAND_MEMORY = 2 * 86_400.0


@dataclass(frozen=True)
class Pending:
    seq: int
    track_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Batch:
    camera_id: int
    epoch: int
    items: list[Pending]


@dataclass(frozen=True)
class CommandRecord:
    status: str
    result: dict[str, Any]
    acked: bool


class LocalStore:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- the sighting outbox ----------------------------------------------------------------

    def put_sighting(self, camera_id: int, epoch: int, track_id: str, body: dict[str, Any]) -> None:
        """Queue a sighting; a newer report of the same track replaces the waiting one and
        goes to the end of the queue."""
        with self._db:
            self._db.execute(
                "DELETE FROM outbox WHERE camera_id = ? AND epoch = ? AND track_id = ?",
                (camera_id, epoch, track_id),
            )
            self._db.execute(
                "INSERT INTO outbox (camera_id, epoch, track_id, body) VALUES (?, ?, ?, ?)",
                (camera_id, epoch, track_id, json.dumps(body)),
            )

    def next_batch(self, limit: int) -> Batch | None:
        """The oldest waiting sightings, all of one camera and epoch."""
        first = self._db.execute(
            "SELECT camera_id, epoch FROM outbox ORDER BY seq LIMIT 1"
        ).fetchone()
        if first is None:
            return None
        camera_id, epoch = first
        rows = self._db.execute(
            "SELECT seq, track_id, body FROM outbox WHERE camera_id = ? AND epoch = ? "
            "ORDER BY seq LIMIT ?",
            (camera_id, epoch, limit),
        ).fetchall()
        return Batch(camera_id, epoch, [Pending(s, t, json.loads(b)) for s, t, b in rows])

    def sent(self, seqs: list[int]) -> None:
        """Accepted: gone (a track reported again meanwhile has a new seq and stays)."""
        with self._db:
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def drop_epoch(self, camera_id: int, epoch: int) -> int:
        """The control plane refused this epoch: its sightings can never be accepted."""
        with self._db:
            cursor = self._db.execute(
                "DELETE FROM outbox WHERE camera_id = ? AND epoch = ?", (camera_id, epoch)
            )
        return cursor.rowcount

    def waiting(self, camera_id: int | None = None) -> int:
        if camera_id is None:
            row = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        else:
            row = self._db.execute(
                "SELECT count(*) FROM outbox WHERE camera_id = ?", (camera_id,)
            ).fetchone()
        return int(row[0])

    # -- the command ledger -----------------------------------------------------------------

    def command(self, command_id: int) -> CommandRecord | None:
        row = self._db.execute(
            "SELECT status, result, acked FROM commands WHERE id = ?", (command_id,)
        ).fetchone()
        if row is None:
            return None
        return CommandRecord(row[0], json.loads(row[1]), bool(row[2]))

    def executed(self, command_id: int, status: str, result: dict[str, Any]) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO commands (id, status, result, acked, at) "
                "VALUES (?, ?, ?, 0, ?)",
                (command_id, status, json.dumps(result), time.time()),
            )
            self._db.execute(
                "DELETE FROM commands WHERE acked = 1 AND at < ?", (time.time() - COMMAND_MEMORY,)
            )

    def acknowledged(self, command_id: int) -> None:
        with self._db:
            self._db.execute("UPDATE commands SET acked = 1 WHERE id = ?", (command_id,))

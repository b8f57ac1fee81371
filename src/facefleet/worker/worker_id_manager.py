"""The worker's identity (WORKER_ID), resolved by one fallback chain:

1. the environment variable ``WORKER_ID``: used as is and never written anywhere, so several
   workers on one host can each set their own without overwriting a shared file;
2. ``WORKER_ID`` in a ``.env`` file: also recorded in a file of that id's own
   (``<state_dir>/worker-<id>.json``), which no other id touches;
3. the id stored in ``<state_dir>/worker_id`` by an earlier run;
4. a new ``worker-<12 hex>`` id, stored in ``<state_dir>/worker_id`` for the next run.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from dotenv import dotenv_values

from facefleet.protocol.ids import InvalidWorkerId as InvalidWorkerId
from facefleet.protocol.ids import validate_worker_id as validate_worker_id

ENV_VAR = "WORKER_ID"
STATE_DIR_ENV_VAR = "FACEFLEET_WORKER_STATE_DIR"
STORED_ID_FILE = "worker_id"


class IdSource(StrEnum):
    env = "env"
    dotenv = "dotenv"
    stored = "stored"
    generated = "generated"


@dataclass(frozen=True)
class WorkerIdentity:
    worker_id: str
    source: IdSource
    path: Path | None = None  # where the id is persisted; None for the environment


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(STATE_DIR_ENV_VAR):
        return Path(env[STATE_DIR_ENV_VAR]).expanduser()
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "facefleet"
    return Path.home() / ".local" / "state" / "facefleet"


def id_state_file(state_dir: Path, worker_id: str) -> Path:
    """The file that belongs to one id; the id pattern keeps it inside ``state_dir``."""
    return state_dir / f"worker-{worker_id}.json"


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and os.replace, so a crash never leaves a partial id."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _persist_dotenv_id(state_dir: Path, worker_id: str) -> Path:
    path = id_state_file(state_dir, worker_id)
    record = {"worker_id": worker_id, "source": IdSource.dotenv.value}
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        current = None
    if current != record:
        atomic_write(path, json.dumps(record) + "\n")
    return path


def resolve_worker_id(
    *,
    environ: Mapping[str, str] | None = None,
    dotenv_path: Path | str | None = ".env",
    state_dir: Path | None = None,
) -> WorkerIdentity:
    """This worker's id by the fallback chain; ``dotenv_path=None`` skips the .env step.

    Raises InvalidWorkerId when the first source that has an id holds an invalid one: a
    typo in WORKER_ID must stop the worker, not silently fall through to another identity.
    """
    env = os.environ if environ is None else environ
    if ENV_VAR in env:
        return WorkerIdentity(validate_worker_id(env[ENV_VAR], "the environment"), IdSource.env)

    directory = state_dir if state_dir is not None else default_state_dir(env)
    if dotenv_path is not None and Path(dotenv_path).is_file():
        values = dotenv_values(dotenv_path)
        if ENV_VAR in values:
            worker_id = validate_worker_id(values[ENV_VAR], f".env file {str(dotenv_path)!r}")
            return WorkerIdentity(
                worker_id, IdSource.dotenv, _persist_dotenv_id(directory, worker_id)
            )

    stored = directory / STORED_ID_FILE
    if stored.exists():
        text = stored.read_text(encoding="utf-8").strip()
        worker_id = validate_worker_id(text, f"state file {str(stored)!r}")
        return WorkerIdentity(worker_id, IdSource.stored, stored)

    worker_id = f"worker-{uuid.uuid4().hex[:12]}"
    atomic_write(stored, worker_id + "\n")
    return WorkerIdentity(worker_id, IdSource.generated, stored)

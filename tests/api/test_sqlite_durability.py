"""SQLite syncs every commit by default (synchronous=FULL): a change the API acknowledged
survives a power loss. FACEFLEET_SQLITE_SYNCHRONOUS chooses NORMAL or EXTRA instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from facefleet.api.config import Settings
from tests.fixtures.harness import make_settings, running_api

# PRAGMA synchronous answers with a number.
LEVELS = {"NORMAL": 1, "FULL": 2, "EXTRA": 3}


async def synchronous_of(settings: Settings) -> tuple[int, int]:
    """The level of the app's write and read-only connections."""
    async with running_api(settings) as api:
        async with api.state.sessions() as session:
            written = (await session.execute(text("PRAGMA synchronous"))).scalar_one()
        async with api.state.reads() as session:
            read = (await session.execute(text("PRAGMA synchronous"))).scalar_one()
    return written, read


@pytest.mark.parametrize("level", [None, "NORMAL", "FULL", "EXTRA"])
async def test_every_connection_uses_the_chosen_level(tmp_path: Path, level: str | None) -> None:
    chosen = {} if level is None else {"sqlite_synchronous": level}
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'f.db'}", **chosen)
    expected = LEVELS[level or "FULL"]
    assert await synchronous_of(settings) == (expected, expected)


def test_a_level_that_loses_commits_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="sqlite_synchronous"):
        Settings(data_dir=tmp_path, sqlite_synchronous="OFF")

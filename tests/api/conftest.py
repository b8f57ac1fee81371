"""Fixtures of the API tests that run a real server: each module defines ``server``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.live_server import LiveServer
from tests.fixtures.services import create_pg_database, drop_pg_database


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the module's live server."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield client


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with nothing in it, not even the schema (for migrations)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}"
        return
    created = create_pg_database()
    try:
        yield created
    finally:
        drop_pg_database(created)

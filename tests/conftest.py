from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fixture_paths import require_fixtures
from tests.harness import Api, FakeClock, make_settings, running_api
from tests.services import create_pg_database, drop_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every API test runs on both databases."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The shared face photos and video; tests using it skip when it is absent."""
    return require_fixtures()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def api(database_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Api]:
    async with running_api(make_settings(tmp_path, database_url), clock) as running:
        yield running

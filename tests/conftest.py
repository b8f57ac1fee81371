from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.face_data import require_fixtures
from tests.fixtures.harness import Api, FakeClock, make_settings, running_api
from tests.fixtures.services import (
    REDIS_URL,
    create_pg_database,
    create_redis_prefix,
    delete_redis_prefix,
    drop_pg_database,
)


@dataclass(frozen=True)
class Backend:
    """The storage an API test runs on: a database, and Redis or the in-process hot store."""

    name: str
    database_url: str
    redis_prefix: str | None = None

    @property
    def hot_settings(self) -> dict[str, Any]:
        if self.redis_prefix is None:
            return {}
        return {"redis_url": REDIS_URL, "redis_prefix": self.redis_prefix}


@pytest.fixture(params=["sqlite-memory", "postgresql-memory", "postgresql-redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every API test runs embedded (SQLite, in-process hot store), on PostgreSQL, and on
    PostgreSQL with the Redis hot store under a key prefix of its own."""
    database, hot = request.param.split("-")
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}"
    else:
        url = create_pg_database()
    prefix = None
    try:
        if hot == "redis":
            prefix = create_redis_prefix()
        yield Backend(request.param, url, prefix)
    finally:
        if prefix is not None:
            delete_redis_prefix(prefix)
        if database != "sqlite":
            drop_pg_database(url)


@pytest.fixture
def database_url(backend: Backend) -> str:
    return backend.database_url


@pytest.fixture
def hot_settings(backend: Backend) -> dict[str, Any]:
    """Settings overrides selecting the backend's hot store (empty: in-process)."""
    return backend.hot_settings


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The shared face photos and video; tests using it skip when it is absent."""
    return require_fixtures()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def api(backend: Backend, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path, backend.database_url, **backend.hot_settings)
    async with running_api(settings, clock) as running:
        yield running

"""Fixtures of the API tests that run a real server: each module defines ``server``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.fixtures.live_server import LiveServer


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the module's live server."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield client

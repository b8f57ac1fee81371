"""Fixtures of the worker tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from facefleet.api.app import create_app
from facefleet.api.security import Role
from facefleet.api.tenants.service import create_tenant
from tests.fixtures.harness import FakeClock, Tenant, make_settings
from tests.fixtures.loopback import ControlPlane, serve


@pytest.fixture
async def cp(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}")
    clock = FakeClock()
    app = create_app(settings, clock=clock)
    async with serve(app) as url:
        async with app.state.facefleet.sessions() as session:
            created = await create_tenant(session, "acme")
            await session.commit()
        tenant = Tenant(created.id, created.name, created.keys)
        async with httpx.AsyncClient(base_url=url, headers=tenant.headers(Role.admin)) as admin:
            yield ControlPlane(url, clock, tenant, admin, settings.lease_ttl)

"""/metrics behind a key of its own: open by default, and when a key is set, only that key
opens it (no tenant key does: the metrics cover every tenant)."""

from __future__ import annotations

from pathlib import Path

from facefleet.api.security import Role
from tests.fixtures.harness import make_settings, running_api

METRICS_KEY = "scrape-7a1c0e"


async def test_metrics_are_open_by_default(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'f.db'}")
    async with running_api(settings) as api:
        assert (await api.client.get("/metrics")).status_code == 200


async def test_a_metrics_key_is_the_only_way_in(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'f.db'}", metrics_key=METRICS_KEY
    )
    assert METRICS_KEY not in repr(settings)
    async with running_api(settings) as api:
        tenant = await api.tenant()
        refused = [
            await api.client.get("/metrics"),
            await api.client.get("/metrics", headers={"Authorization": "Bearer wrong"}),
            await api.client.get("/metrics", headers={"Authorization": METRICS_KEY}),
            *[await api.client.get("/metrics", headers=tenant.headers(role)) for role in Role],
        ]
        for resp in refused:
            assert resp.status_code == 401
            assert resp.json()["error"] == "Unauthorized"
            assert resp.headers["WWW-Authenticate"] == "Bearer"
        ok = await api.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
        assert ok.status_code == 200 and "facefleet_" in ok.text

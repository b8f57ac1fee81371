"""Rate limits per API key, over real HTTP: a key over its budget gets 429 with Retry-After
in the API's error shape and recovers after it; heartbeats and camera requests are paid from
a budget of their own, so they pass while the key's general budget is spent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from facefleet.api.app import create_app
from facefleet.api.rate_limits import WORKER_ROUTES
from facefleet.api.security import Role
from facefleet.api.storage.hot.memory import MemoryHotStore
from tests.fixtures.harness import make_settings
from tests.fixtures.live_server import LiveServer, live_server

RATE, BURST = 2.0, 3


@pytest.fixture
def server(database_url: str, hot_settings: dict[str, Any], tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path,
        database_url,
        rate_limit=RATE,
        rate_limit_burst=BURST,
        worker_rate_limit=1000,
        worker_rate_limit_burst=1000,
        **hot_settings,
    )
    with live_server(create_app(settings)) as running:
        yield running


async def test_token_bucket_arithmetic() -> None:
    hot = MemoryHotStore()
    take = [await hot.take_token("k", rate=4.0, burst=2, now=t) for t in (0.0, 0.0, 0.0, 0.1, 0.25)]
    assert take[:2] == [0.0, 0.0]  # the burst
    assert take[2] == pytest.approx(0.25)  # empty: one token in a quarter second
    assert take[3] == pytest.approx(0.15)  # refused calls take nothing
    assert take[4] == 0.0
    assert await hot.take_token("k", rate=4.0, burst=2, now=100.0) == 0.0  # full again, capped
    assert await hot.take_token("k", rate=4.0, burst=2, now=100.0) == 0.0
    assert await hot.take_token("k", rate=4.0, burst=2, now=100.0) > 0


async def test_over_the_budget_is_429_with_retry_after_then_recovers(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    tenant = server.new_tenant()
    answers = [await http.get("/v1/cameras", headers=tenant.headers()) for _ in range(BURST + 1)]
    assert [r.status_code for r in answers[:BURST]] == [200] * BURST
    refused = answers[BURST]
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert body["error"] == "TooManyRequests" and "budget" in body["detail"]
    assert 0 < body["retry_after"] <= 1 / RATE
    assert refused.headers["Retry-After"] == "1"
    # Another key of the same tenant has a budget of its own.
    assert (await http.get("/v1/cameras", headers=tenant.headers(Role.viewer))).status_code == 200
    await asyncio.sleep(body["retry_after"])
    assert (await http.get("/v1/cameras", headers=tenant.headers())).status_code == 200


async def test_heartbeats_pass_while_the_general_budget_is_spent(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    tenant = server.new_tenant()
    admin = tenant.headers()  # an admin key may act as a worker: one key, both budgets
    resp = await http.post("/v1/workers/register", json={"worker_id": "w1"}, headers=admin)
    assert resp.status_code == 200, resp.text
    while (await http.get("/v1/workers", headers=admin)).status_code != 429:
        pass
    # Thirty requests: far past the general burst (3), had they been paid from it.
    for _ in range(10):
        beat = await http.post("/v1/workers/w1/heartbeat", headers=admin)
        assert beat.status_code == 200, beat.text
        camera = await http.post("/v1/workers/w1/camera/request", headers=admin)
        assert camera.status_code == 200, camera.text
        legacy = await http.post("/v1/registry/workers/w1/heartbeat", headers=admin)
        assert legacy.status_code == 200, legacy.text


async def test_the_worker_budget_has_its_own_limit(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'f.db'}",
        worker_rate_limit=1,
        worker_rate_limit_burst=2,
    )
    with live_server(create_app(settings)) as server:
        tenant = server.new_tenant()
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            worker = tenant.headers(Role.worker)
            resp = await http.post("/v1/workers/register", json={"worker_id": "w"}, headers=worker)
            headers = {**worker, "X-Worker-Session": resp.json()["session_token"]}
            assert (await http.post("/v1/workers/w/heartbeat", headers=headers)).status_code == 200
            beat = await http.post("/v1/workers/w/heartbeat", headers=headers)
            assert beat.status_code == 429 and beat.json()["error"] == "TooManyRequests"
            # The general budget is untouched (and the default is generous).
            assert (await http.get("/v1/gallery", headers=worker)).status_code == 200


async def test_every_route_that_takes_a_key_documents_429(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'f.db'}"))
    schema = app.openapi()
    keyed = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if "401" not in operation["responses"] or path == "/metrics":
                continue  # /metrics takes the metrics key, not a tenant's: no budget
            keyed += 1
            limited = operation["responses"].get("429")
            assert limited is not None, f"{method.upper()} {path} does not document 429"
            assert "Retry-After" in limited["headers"]
    assert keyed > 50
    # The worker budget names routes that exist (a renamed route would fall to general).
    assert set(schema["paths"]) >= WORKER_ROUTES

"""POST /v1/workers/cleanup: the reaper's pass over the caller's tenant only, run by the
leader whichever replica answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from facefleet.api.background.reaper import Reaper
from facefleet.api.config import Settings
from facefleet.api.security import Role
from facefleet.api.storage.hot.redis import connect
from tests.fixtures.harness import (
    Api,
    FakeClock,
    WorkerHandle,
    add_cameras,
    make_settings,
    running_api,
)
from tests.fixtures.services import (
    REDIS_URL,
    create_pg_database,
    create_redis_prefix,
    delete_redis_prefix,
    drop_pg_database,
)
from tests.fixtures.waiting import until


async def status(api: Api, headers: dict[str, str], worker_id: str) -> Any:
    return (await api.client.get(f"/v1/workers/{worker_id}", headers=headers)).json()["status"]


async def test_a_cleanup_touches_only_the_callers_tenant(api: Api, clock: FakeClock) -> None:
    a, b = await api.tenant(), await api.tenant()
    (cam_a,) = await add_cameras(api, a, 1)
    (cam_b,) = await add_cameras(api, b, 1)
    for tenant in (a, b):
        worker = WorkerHandle(api, tenant, "w1")
        assert (await worker.register()).status_code == 200
        assert (await worker.request_camera()).json()["assignment"] is not None
    clock.advance(api.settings.lease_ttl + 1)  # both expired; no reaper runs in this test

    done = await api.client.post("/v1/workers/cleanup", headers=a.headers())
    assert done.status_code == 200, done.text
    assert done.json()["changes"] == [
        {
            "worker_id": "w1",
            "from_status": "online",
            "to_status": "offline",
            "released_cameras": [cam_a],
        }
    ]
    assert await status(api, a.headers(), "w1") == "offline"
    # B's worker is exactly as it was: expired, but not reaped, its camera still held.
    assert await status(api, b.headers(), "w1") == "online"
    cams = (await api.client.get("/v1/cameras", headers=b.headers())).json()["items"]
    assert [c["lease"]["worker_id"] for c in cams] == ["w1"]

    theirs = await api.client.post("/v1/workers/cleanup", headers=b.headers())
    assert [c["released_cameras"] for c in theirs.json()["changes"]] == [[cam_b]]
    viewer = await api.client.post("/v1/workers/cleanup", headers=a.headers(Role.viewer))
    assert viewer.status_code == 403


@pytest.fixture
def shared() -> Iterator[dict[str, Any]]:
    """A PostgreSQL database and a Redis prefix that replicas share."""
    url, prefix = create_pg_database(), create_redis_prefix()
    try:
        yield {"database_url": url, "redis_url": REDIS_URL, "redis_prefix": prefix}
    finally:
        delete_redis_prefix(prefix)
        drop_pg_database(url)


class Untouchable(Reaper):
    async def run_once(self, tenant_id: str | None = None) -> list[Any]:
        raise AssertionError("a replica that does not lead ran a reaper pass")


async def test_a_replica_that_does_not_lead_has_the_leader_run_it(
    tmp_path: Path, shared: dict[str, Any]
) -> None:
    def settings(name: str) -> Settings:
        return make_settings(
            tmp_path / name,
            shared["database_url"],
            run_background=True,
            leader_lock_ttl=1.0,
            **hot(shared),
        )

    def leads(api: Api) -> bool:
        return api.state.election is not None and api.state.election.leading()

    async with running_api(settings("one")) as one, running_api(settings("two")) as two:
        await until(lambda: leads(one) or leads(two), 10, "a leader")
        leader, other = (one, two) if leads(one) else (two, one)
        other.state.reaper = Untouchable(other.state)
        tenant = await leader.tenant()
        worker = WorkerHandle(leader, tenant, "w1")
        assert (await worker.register()).status_code == 200
        for api in (other, leader):
            resp = await api.client.post("/v1/workers/cleanup", headers=tenant.headers())
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"dry_run": False, "changes": []}  # w1 is alive
            dry = await api.client.post(
                "/v1/workers/cleanup?dry_run=true", headers=tenant.headers()
            )
            assert dry.status_code == 200  # a dry run only reads: any replica


async def test_no_answer_from_the_leader_is_a_503(tmp_path: Path, shared: dict[str, Any]) -> None:
    client: aioredis.Redis = connect(REDIS_URL)
    # Another replica holds the lock, and never answers.
    await client.set(f"{shared['redis_prefix']}leader", "elsewhere:1")
    await client.aclose()
    config = make_settings(
        tmp_path, shared["database_url"], run_background=True, leader_lock_ttl=1.0, **hot(shared)
    )
    async with running_api(config) as api:
        api.state.reaper = Untouchable(api.state)
        tenant = await api.tenant()
        started = asyncio.get_running_loop().time()
        resp = await api.client.post("/v1/workers/cleanup", headers=tenant.headers())
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "1"
        assert resp.json()["error"] == "ServiceUnavailable"
        assert asyncio.get_running_loop().time() - started < 10


def hot(shared: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in shared.items() if k != "database_url"}

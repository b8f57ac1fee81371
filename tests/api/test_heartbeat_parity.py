"""The heartbeat is one endpoint on two paths: the consolidated one and the seed's deprecated
one answer every request the same way, the deprecated one adding its headers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from facefleet.api.security import Role
from tests.fixtures.harness import Api, Tenant, WorkerHandle

NEW = "/v1/workers/{}/heartbeat"
LEGACY = "/v1/registry/workers/{}/heartbeat"


async def both(api: Api, worker_id: str, **request: Any) -> tuple[httpx.Response, httpx.Response]:
    new = await api.client.post(NEW.format(worker_id), **request)
    legacy = await api.client.post(LEGACY.format(worker_id), **request)
    return new, legacy


def same(new: httpx.Response, legacy: httpx.Response, status: int) -> dict[str, Any]:
    assert new.status_code == legacy.status_code == status, (new.text, legacy.text)
    assert new.json() == legacy.json()
    assert "deprecation" not in new.headers
    assert legacy.headers["deprecation"] == "true"
    assert 'rel="successor-version"' in legacy.headers["link"]
    body: dict[str, Any] = new.json()
    return body


@pytest.fixture
async def registered(api: Api) -> tuple[Tenant, WorkerHandle]:
    tenant = await api.tenant()
    worker = WorkerHandle(api, tenant, "parity")
    assert (await worker.register()).status_code == 200
    # A tenant's gallery version is null in heartbeats until its first read lands (a heartbeat
    # never waits for the database): compared answers must not straddle that moment.
    for _ in range(100):
        beat = await api.client.post(NEW.format("parity"), headers=worker.headers)
        if beat.json()["gallery_version"] is not None:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the tenant's gallery version never reached the heartbeat")
    return tenant, worker


async def test_200_the_same_answer(api: Api, registered: tuple[Tenant, WorkerHandle]) -> None:
    _, worker = registered
    for body in ({"metrics": {"fps": 4.0}}, None):
        request: dict[str, Any] = {"headers": worker.headers}
        if body is not None:
            request["json"] = body
        answer = same(*await both(api, "parity", **request), 200)
        assert answer["status"] == "online"


async def test_401_without_a_key(api: Api, registered: tuple[Tenant, WorkerHandle]) -> None:
    answer = same(*await both(api, "parity", json={}), 401)
    assert answer["error"] == "Unauthorized"


async def test_403_for_a_viewer_and_for_another_session(
    api: Api, registered: tuple[Tenant, WorkerHandle]
) -> None:
    tenant, worker = registered
    viewer = same(*await both(api, "parity", json={}, headers=tenant.headers(Role.viewer)), 403)
    assert viewer["error"] == "Forbidden"
    stolen = {**worker.headers, "X-Worker-Session": "not-the-session"}
    assert same(*await both(api, "parity", json={}, headers=stolen), 403)["error"] == "Forbidden"


async def test_404_for_an_unknown_worker(api: Api, registered: tuple[Tenant, WorkerHandle]) -> None:
    tenant, _ = registered
    answer = same(*await both(api, "nobody", json={}, headers=tenant.headers(Role.worker)), 404)
    assert answer["error"] == "WorkerNotFound"


@pytest.mark.parametrize(
    "content",
    [
        b'{"metrics": 3}',
        b'{"unexpected": 1}',
        b'{"metrics": {"x": "\\ud800"}}',
        b"{not json",
    ],
)
async def test_422_for_a_body_the_model_refuses(
    api: Api, registered: tuple[Tenant, WorkerHandle], content: bytes
) -> None:
    _, worker = registered
    headers = {**worker.headers, "content-type": "application/json"}
    answer = same(*await both(api, "parity", content=content, headers=headers), 422)
    assert answer["error"] == "ValidationError"


async def test_422_for_an_invalid_worker_id(
    api: Api, registered: tuple[Tenant, WorkerHandle]
) -> None:
    _, worker = registered
    answer = same(*await both(api, "-bad-", json={}, headers=worker.headers), 422)
    assert answer["fields"][0]["field"] == "path.worker_id"

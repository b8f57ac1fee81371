"""API keys through /v1/keys: created (shown once), listed, rotated, expired and revoked;
a key that stops working is refused at once, however recently it was cached."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from facefleet.api.security import Role, hash_secret
from facefleet.api.storage.db.models import ApiKey
from tests.fixtures.harness import Api, FakeClock, Tenant, make_settings, running_api


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create(api: Api, tenant: Tenant, **body: Any) -> dict[str, Any]:
    resp = await api.client.post(
        "/v1/keys", json={"role": "viewer", **body}, headers=tenant.headers()
    )
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def works(api: Api, key: str) -> bool:
    """Whether the key is accepted (a read every role may make, or 403 for a worker key)."""
    resp = await api.client.get("/v1/whoami", headers=bearer(key))
    assert resp.status_code in (200, 401), resp.text
    return resp.status_code == 200


async def listed(api: Api, tenant: Tenant) -> dict[int, dict[str, Any]]:
    resp = await api.client.get("/v1/keys", headers=tenant.headers())
    assert resp.status_code == 200, resp.text
    return {item["id"]: item for item in resp.json()["items"]}


async def test_a_key_is_shown_once_listed_without_its_secret_and_revoked(api: Api) -> None:
    tenant = await api.tenant()
    created = await create(api, tenant, name="dashboard")
    key = created["key"]
    assert key.startswith("ff_viewer_") and created["prefix"] == key[:16]
    assert created["role"] == "viewer" and created["status"] == "active"
    assert await works(api, key)

    keys = await listed(api, tenant)
    assert keys[created["id"]]["name"] == "dashboard"
    # Its use is recorded off the request's path.
    async with asyncio.timeout(5):
        while keys[created["id"]]["last_used_at"] is None:
            await asyncio.sleep(0.02)
            keys = await listed(api, tenant)
    # The bootstrap keys of the tenant are listed too; no secret and no hash anywhere.
    assert {k["role"] for k in keys.values()} == {"admin", "worker", "viewer"}
    text = (await api.client.get("/v1/keys", headers=tenant.headers())).text
    assert key not in text and hash_secret(key) not in text and '"key"' not in text

    resp = await api.client.delete(f"/v1/keys/{created['id']}", headers=tenant.headers())
    assert resp.status_code == 200 and resp.json()["status"] == "revoked"
    assert not await works(api, key)  # at once, though this replica had it cached
    again = await api.client.delete(f"/v1/keys/{created['id']}", headers=tenant.headers())
    assert again.status_code == 200 and again.json()["revoked_at"] == resp.json()["revoked_at"]
    assert (await listed(api, tenant))[created["id"]]["status"] == "revoked"


async def test_only_the_tenants_admin_manages_its_keys(api: Api) -> None:
    a, b = await api.tenant(), await api.tenant()
    created = await create(api, a)
    for role in (Role.viewer, Role.worker):
        for method, path in [
            ("GET", "/v1/keys"),
            ("POST", "/v1/keys"),
            ("DELETE", f"/v1/keys/{created['id']}"),
            ("POST", f"/v1/keys/{created['id']}/rotate"),
        ]:
            resp = await api.client.request(
                method, path, json={"role": "admin"}, headers=a.headers(role)
            )
            assert resp.status_code == 403, (role, method, path, resp.text)
    # Another tenant's key id is an id that does not exist.
    for method, path in [
        ("DELETE", f"/v1/keys/{created['id']}"),
        ("POST", f"/v1/keys/{created['id']}/rotate"),
    ]:
        resp = await api.client.request(method, path, json={}, headers=b.headers())
        assert resp.status_code == 404, resp.text
    assert created["id"] not in await listed(api, b)
    assert await works(api, created["key"])


async def test_an_expired_key_is_refused_like_a_revoked_one(api: Api, clock: FakeClock) -> None:
    tenant = await api.tenant()
    created = await create(api, tenant, ttl_seconds=60)
    assert await works(api, created["key"])
    clock.advance(59)
    assert await works(api, created["key"])
    clock.advance(2)
    assert not await works(api, created["key"])  # cached, yet refused
    assert (await listed(api, tenant))[created["id"]]["status"] == "expired"
    # A rotation needs a working key.
    resp = await api.client.post(
        f"/v1/keys/{created['id']}/rotate", json={}, headers=tenant.headers()
    )
    assert resp.status_code == 409, resp.text


async def test_expiry_is_validated(api: Api, clock: FakeClock) -> None:
    tenant = await api.tenant()
    past = "2001-01-01T00:00:00Z"
    for body in [
        {"role": "viewer", "expires_at": past},
        {"role": "viewer", "expires_at": "2099-01-01T00:00:00Z"},  # over ten years away
        {"role": "viewer", "ttl_seconds": 0},
        {"role": "viewer", "ttl_seconds": 60, "expires_at": "2099-01-01T00:00:00Z"},
        {"role": "owner"},
        {"role": "viewer", "name": "n" * 129},
    ]:
        resp = await api.client.post("/v1/keys", json=body, headers=tenant.headers())
        assert resp.status_code == 422, (body, resp.text)
    resp = await api.client.post(
        "/v1/keys",
        json={"role": "worker", "expires_at": "2030-01-01T00:00:00+02:00"},
        headers=tenant.headers(),
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["expires_at"].startswith("2029-12-31T22:00")
    # No time zone: UTC, as every time the API takes.
    naive = {"role": "viewer", "expires_at": "2030-01-01T00:00:00"}
    resp = await api.client.post("/v1/keys", json=naive, headers=tenant.headers())
    assert resp.status_code == 201, resp.text
    assert resp.json()["expires_at"].startswith("2030-01-01T00:00")


async def test_rotation_revokes_the_old_key_or_lets_it_overlap(api: Api, clock: FakeClock) -> None:
    tenant = await api.tenant()
    first = await create(api, tenant, role="worker", name="fleet")
    resp = await api.client.post(
        f"/v1/keys/{first['id']}/rotate", json={}, headers=tenant.headers()
    )
    assert resp.status_code == 200, resp.text
    second = resp.json()["new"]
    assert resp.json()["old"]["status"] == "revoked"
    assert second["role"] == "worker" and second["name"] == "fleet"
    assert second["key"].startswith("ff_worker_")
    assert not await works(api, first["key"]) and await works(api, second["key"])

    resp = await api.client.post(
        f"/v1/keys/{second['id']}/rotate",
        json={"overlap_seconds": 30, "ttl_seconds": 3600},
        headers=tenant.headers(),
    )
    assert resp.status_code == 200, resp.text
    third = resp.json()["new"]
    assert resp.json()["old"]["status"] == "active" and resp.json()["old"]["expires_at"]
    assert third["expires_at"] is not None
    clock.advance(29)
    assert await works(api, second["key"]) and await works(api, third["key"])
    clock.advance(2)
    assert not await works(api, second["key"]) and await works(api, third["key"])


async def test_the_last_working_admin_key_cannot_be_revoked(api: Api) -> None:
    tenant = await api.tenant()
    admins = [k for k in (await listed(api, tenant)).values() if k["role"] == "admin"]
    (only,) = admins
    resp = await api.client.delete(f"/v1/keys/{only['id']}", headers=tenant.headers())
    assert resp.status_code == 409, resp.text
    assert await works(api, tenant.keys[Role.admin])
    # With another admin key it can; the other one then is the last.
    other = await create(api, tenant, role="admin")
    resp = await api.client.delete(f"/v1/keys/{only['id']}", headers=tenant.headers())
    assert resp.status_code == 200, resp.text
    assert not await works(api, tenant.keys[Role.admin])
    resp = await api.client.delete(f"/v1/keys/{other['id']}", headers=bearer(other["key"]))
    assert resp.status_code == 409, resp.text


async def test_a_revocation_nobody_announced_holds_within_the_cache_time(tmp_path: Path) -> None:
    """Without the broadcast (a replica that missed it), the auth cache bounds the time a
    revoked key keeps working."""
    cache = 0.6
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'f.db'}", auth_cache_seconds=cache
    )
    async with running_api(settings) as api:
        tenant = await api.tenant()
        created = await create(api, tenant)
        assert await works(api, created["key"])
        async with api.state.sessions() as session:
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == created["id"])
                .values(revoked_at=ApiKey.created_at)
            )
            await session.commit()
        loop = asyncio.get_running_loop()
        revoked = loop.time()
        while await works(api, created["key"]):
            assert loop.time() - revoked < cache, "the revoked key outlived the cache time"
            await asyncio.sleep(0.02)


async def test_the_worker_sdk_hears_a_revoked_key_as_unauthorized(api: Api) -> None:
    tenant = await api.tenant()
    created = await create(api, tenant, role="worker")
    body = {"worker_id": "w1", "instance_id": "i1"}
    resp = await api.client.post("/v1/workers/register", json=body, headers=bearer(created["key"]))
    assert resp.status_code == 200, resp.text
    await api.client.delete(f"/v1/keys/{created['id']}", headers=tenant.headers())
    headers = {**bearer(created["key"]), "X-Worker-Session": resp.json()["session_token"]}
    beat = await api.client.post("/v1/workers/w1/heartbeat", headers=headers)
    assert beat.status_code == 401 and beat.json()["error"] == "Unauthorized"
    assert isinstance(beat, httpx.Response)

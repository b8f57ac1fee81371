"""Tenants are isolated and roles are enforced: keys, sessions, cross-tenant access."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from facefleet.api.security import Role
from tests.fixtures.harness import Api, WorkerHandle, add_cameras, make_settings, running_api


async def test_worker_key_of_tenant_a_cannot_touch_tenant_b(api: Api) -> None:
    a = await api.tenant()
    b = await api.tenant()
    (b_cam,) = await add_cameras(api, b, 1)
    b_worker = WorkerHandle(api, b, "shared-name")
    await b_worker.register()
    a_worker = WorkerHandle(api, a, "a-worker")
    await a_worker.register()

    client, a_worker_headers = api.client, a_worker.headers
    # Tenant B's worker is invisible to tenant A, whatever the route.
    for method, path in [
        ("POST", "/v1/workers/shared-name/heartbeat"),
        ("POST", "/v1/workers/shared-name/camera/request"),
        ("GET", "/v1/workers/shared-name/camera"),
        ("DELETE", "/v1/workers/shared-name"),
    ]:
        resp = await client.request(method, path, headers=a_worker_headers)
        assert resp.status_code in (403, 404), (method, path, resp.text)
    for method, path in [("GET", "/v1/workers/shared-name"), ("GET", f"/v1/cameras/{b_cam}")]:
        resp = await client.request(method, path, headers=a.headers(Role.admin))
        assert resp.status_code == 404, (method, path, resp.text)
    resp = await client.patch(f"/v1/cameras/{b_cam}", json={"priority": 3}, headers=a.headers())
    assert resp.status_code == 404
    assert (await client.delete(f"/v1/cameras/{b_cam}", headers=a.headers())).status_code == 404

    # Tenant A's worker never gets tenant B's camera, and B's lists don't show A's worker.
    assert (await a_worker.request_camera()).json()["assignment"] is None
    b_list = (await client.get("/v1/workers", headers=b.headers(Role.viewer))).json()
    assert [w["worker_id"] for w in b_list["items"]] == ["shared-name"]
    # The same worker_id in two tenants is two workers.
    same = WorkerHandle(api, a, "shared-name")
    assert (await same.register()).status_code == 200


async def test_a_worker_cannot_act_as_another_worker(api: Api) -> None:
    tenant = await api.tenant()
    await add_cameras(api, tenant, 2)
    alice = WorkerHandle(api, tenant, "alice")
    bob = WorkerHandle(api, tenant, "bob")
    await alice.register()
    await bob.register()
    impostor = {**tenant.headers(Role.worker), "X-Worker-Session": alice.session_token}
    for method, path in [
        ("POST", "/v1/workers/bob/heartbeat"),
        ("POST", "/v1/workers/bob/camera/request"),
        ("GET", "/v1/workers/bob/camera"),
        ("DELETE", "/v1/workers/bob"),
    ]:
        resp = await api.client.request(method, path, headers=impostor)
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json()["error"] == "Forbidden"
    no_session = await api.client.post(
        "/v1/workers/bob/heartbeat", headers=tenant.headers(Role.worker)
    )
    assert no_session.status_code == 403
    # Worker keys cannot use operator routes; viewers cannot write.
    assert (await api.client.get("/v1/workers", headers=alice.headers)).status_code == 403
    viewer = tenant.headers(Role.viewer)
    assert (await api.client.get("/v1/workers", headers=viewer)).status_code == 200
    resp = await api.client.post(
        "/v1/cameras", json={"name": "x", "source_url": "rtsp://h/s"}, headers=viewer
    )
    assert resp.status_code == 403
    assert (await api.client.post("/v1/workers/cleanup", headers=viewer)).status_code == 403
    # Bob is untouched by all of that.
    assert (await bob.heartbeat()).status_code == 200


@pytest.mark.parametrize(
    "authorization", [None, "Bearer nope", "Basic abc", "Bearer ff_admin_" + "x" * 43]
)
async def test_missing_or_bad_keys_are_401(api: Api, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    resp = await api.client.get("/v1/workers", headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"] == "Unauthorized"


async def test_second_live_process_with_same_worker_id_is_refused(api: Api) -> None:
    tenant = await api.tenant()
    first = WorkerHandle(api, tenant, "dup")
    await first.register(hostname="host-a")
    second = WorkerHandle(api, tenant, "dup")
    resp = await second.register(hostname="host-b")
    assert resp.status_code == 409
    body = resp.json()
    assert body["error"] == "WorkerIdInUse" and "host-a" in body["detail"]
    assert body["retry_after"] > 0
    # The holder re-registering (it sends its session) is idempotent.
    again = await first.register(hostname="host-a")
    assert again.status_code == 200
    assert (await first.heartbeat()).status_code == 200


async def test_default_tenant_keys_file_is_private(
    tmp_path: Path, database_url: str, hot_settings: dict[str, Any]
) -> None:
    settings = make_settings(tmp_path, database_url, bootstrap_default_tenant=True, **hot_settings)
    async with running_api(settings) as api:
        keys_file = tmp_path / "default-tenant-keys.json"
        assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
        keys = json.loads(keys_file.read_text())["keys"]
        resp = await api.client.get(
            "/v1/workers", headers={"Authorization": f"Bearer {keys['admin']}"}
        )
        assert resp.status_code == 200
    # A second start keeps the same tenant and keys.
    async with running_api(settings):
        assert json.loads(keys_file.read_text())["keys"] == keys

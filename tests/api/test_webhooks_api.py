"""/v1/webhooks on every backend: admin keys change endpoints, readers list them, bad input
is a 422 that says why, another tenant's endpoints do not exist, the secret appears once."""

from __future__ import annotations

from facefleet.api.security import Role
from tests.fixtures.harness import Api


async def test_endpoints_are_managed_by_admins_and_listed_by_readers(api: Api) -> None:
    tenant = await api.tenant()
    body = {"url": "https://hooks.example.com/faces", "event_types": ["sighting", "registered"]}
    for role in (Role.viewer, Role.worker):
        refused = await api.client.post("/v1/webhooks", json=body, headers=tenant.headers(role))
        assert refused.status_code == 403, refused.text
    created = await api.client.post("/v1/webhooks", json=body, headers=tenant.headers())
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_")
    assert hook["event_types"] == ["registered", "sighting"] and hook["enabled"] is True

    listed = await api.client.get("/v1/webhooks", headers=tenant.headers(Role.viewer))
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert "secret" not in item and item["id"] == hook["id"]
    assert item["deliveries"] == {"pending": 0, "delivered": 0, "dead": 0}
    worker_read = await api.client.get("/v1/webhooks", headers=tenant.headers(Role.worker))
    assert worker_read.status_code == 403

    path = f"/v1/webhooks/{hook['id']}"
    patched = await api.client.patch(
        path, json={"enabled": False, "event_types": ["*"]}, headers=tenant.headers()
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["enabled"], patched.json()["event_types"]) == (False, ["*"])
    viewer_patch = await api.client.patch(
        path, json={"enabled": True}, headers=tenant.headers(Role.viewer)
    )
    assert viewer_patch.status_code == 403

    # Another tenant sees none of it.
    other = await api.tenant()
    for method in ("GET", "PATCH", "DELETE"):
        patch: dict[str, bool] | None = {"enabled": True} if method == "PATCH" else None
        resp = await api.client.request(method, path, headers=other.headers(), json=patch)
        assert resp.status_code == 404 and resp.json()["error"] == "WebhookNotFound", resp.text
    assert (await api.client.get("/v1/webhooks", headers=other.headers())).json()["items"] == []

    types = (await api.client.get("/v1/webhooks/event-types", headers=tenant.headers())).json()
    assert "sighting" in types["types"] and "stats" not in types["types"]

    assert (await api.client.delete(path, headers=tenant.headers(Role.viewer))).status_code == 403
    assert (await api.client.delete(path, headers=tenant.headers())).status_code == 204
    assert (await api.client.get(path, headers=tenant.headers())).status_code == 404
    gone = await api.client.get(f"{path}/deliveries", headers=tenant.headers())
    assert gone.status_code == 404


async def test_bad_endpoints_are_refused_with_a_reason(api: Api) -> None:
    tenant = await api.tenant()
    cases = {
        "ftp://example.com/x": "http:// or https://",
        "https://": "http:// or https://",
        "https://user:pw@example.com/x": "no credentials",
        "https://example.com:99999/x": "Port out of range",
    }
    for url, reason in cases.items():
        resp = await api.client.post(
            "/v1/webhooks", json={"url": url, "event_types": ["*"]}, headers=tenant.headers()
        )
        assert resp.status_code == 422, (url, resp.text)
        assert reason in resp.text, (url, resp.text)
    unknown = await api.client.post(
        "/v1/webhooks",
        json={"url": "https://example.com/x", "event_types": ["sighting", "door_opened"]},
        headers=tenant.headers(),
    )
    assert unknown.status_code == 422 and "door_opened" in unknown.text
    empty = await api.client.post(
        "/v1/webhooks",
        json={"url": "https://example.com/x", "event_types": []},
        headers=tenant.headers(),
    )
    assert empty.status_code == 422
    created = await api.client.post(
        "/v1/webhooks",
        json={"url": "https://example.com/x", "event_types": ["*"]},
        headers=tenant.headers(),
    )
    hook_id = created.json()["id"]
    null = await api.client.patch(
        f"/v1/webhooks/{hook_id}", json={"url": None}, headers=tenant.headers()
    )
    assert null.status_code == 422 and "url cannot be null" in null.text
    no_delivery = await api.client.get(
        f"/v1/webhooks/{hook_id}/deliveries/12345", headers=tenant.headers()
    )
    assert no_delivery.status_code == 404 and no_delivery.json()["error"] == "DeliveryNotFound"
    bad_status = await api.client.get(
        f"/v1/webhooks/{hook_id}/deliveries?status=lost", headers=tenant.headers()
    )
    assert bad_status.status_code == 422

"""Camera CRUD, credential masking, and the error contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from facefleet.api.security import Role
from facefleet.protocol.source_urls import mask_source_url
from tests.fixtures.harness import Api, WorkerHandle


async def test_camera_crud_never_echoes_credentials(api: Api) -> None:
    tenant = await api.tenant()
    body = {
        "name": "lobby",
        "source_url": "rtsp://admin:s3cret@10.1.2.3:554/stream?token=abc&channel=1",
        "target_fps": 8,
        "required_labels": ["gpu"],
        "priority": 2,
    }
    created = await api.client.post("/v1/cameras", json=body, headers=tenant.headers())
    assert created.status_code == 201
    cam = created.json()
    assert "s3cret" not in created.text and "abc" not in created.text
    assert cam["source_url"] == "rtsp://***@10.1.2.3:554/stream?token=***&channel=1"
    assert cam["required_labels"] == ["gpu"] and cam["lease"]["worker_id"] is None

    listed = await api.client.get("/v1/cameras", headers=tenant.headers(Role.viewer))
    assert "s3cret" not in listed.text and listed.json()["total"] == 1
    patched = await api.client.patch(
        f"/v1/cameras/{cam['id']}",
        json={"required_labels": [], "enabled": False},
        headers=tenant.headers(),
    )
    assert patched.json()["required_labels"] == [] and patched.json()["enabled"] is False
    dup = await api.client.post("/v1/cameras", json=body, headers=tenant.headers())
    assert dup.status_code == 409 and dup.json()["error"] == "Conflict"
    assert (
        await api.client.delete(f"/v1/cameras/{cam['id']}", headers=tenant.headers())
    ).status_code == 204
    gone = await api.client.get(f"/v1/cameras/{cam['id']}", headers=tenant.headers())
    assert gone.status_code == 404 and gone.json()["error"] == "CameraNotFound"

    # The worker holding a camera gets the full URL: it has to open the stream.
    await api.client.post(
        "/v1/cameras", json=body | {"required_labels": []}, headers=tenant.headers()
    )
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    assignment = (await worker.request_camera()).json()["assignment"]
    assert assignment["source_url"] == body["source_url"]


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("rtsp://u:p@h/s", "rtsp://***@h/s"),
        ("http://h/mjpg?user=a&password=b", "http://h/mjpg?user=a&password=***"),
        ("file:///videos/a.mp4", "file:///videos/a.mp4"),
        ("rtsp://h:554/s", "rtsp://h:554/s"),
    ],
)
def test_mask_source_url(url: str, masked: str) -> None:
    assert mask_source_url(url) == masked


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "source_url": "rtsp://h/s"},
        {"name": "x", "source_url": "ftp://h/s"},
        {"name": "x", "source_url": "rtsp:///nohost"},
        {"name": "x", "source_url": "rtsp://h/s", "target_fps": 0},
        {"name": "x", "source_url": "rtsp://h/s", "required_labels": ["bad label!"]},
        {"name": "x", "source_url": "rtsp://h/s", "unexpected": 1},
    ],
)
async def test_bad_camera_bodies_are_422_with_field_messages(
    api: Api, body: dict[str, object]
) -> None:
    tenant = await api.tenant()
    resp = await api.client.post("/v1/cameras", json=body, headers=tenant.headers())
    assert resp.status_code == 422, resp.text
    err = resp.json()
    assert err["error"] == "ValidationError" and err["fields"] and err["detail"]


async def test_bad_worker_bodies_and_unknown_workers(api: Api) -> None:
    tenant = await api.tenant()
    worker_headers = tenant.headers(Role.worker)
    for payload in [
        {},
        {"worker_id": ""},
        {"worker_id": "bad id"},
        {"worker_id": "x" * 200},
        {"worker_id": "ok", "capacity": 0},
    ]:
        resp = await api.client.post("/v1/workers/register", json=payload, headers=worker_headers)
        assert resp.status_code == 422, payload
    not_json = await api.client.post(
        "/v1/workers/register",
        content=b"{nope",
        headers={**worker_headers, "content-type": "application/json"},
    )
    assert not_json.status_code == 422
    unknown = await api.client.post("/v1/workers/ghost/heartbeat", headers=tenant.headers())
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "WorkerNotFound"
    assert "POST /v1/workers/register" in unknown.json()["detail"]
    missing = await api.client.get("/v1/nothing-here", headers=tenant.headers())
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"


async def test_oversize_bodies_are_refused(api: Api) -> None:
    tenant = await api.tenant()
    big = b'{"worker_id": "w", "version": "' + b"x" * (api.settings.max_body_bytes + 10) + b'"}'
    resp = await api.client.post(
        "/v1/workers/register",
        content=big,
        headers={**tenant.headers(Role.worker), "content-type": "application/json"},
    )
    assert resp.status_code == 413
    assert resp.json()["error"] == "PayloadTooLarge"


async def test_oversize_bodies_without_a_declared_length_are_refused(api: Api) -> None:
    tenant = await api.tenant()
    chunk = b"x" * 65536

    async def endless() -> AsyncIterator[bytes]:
        yield b'{"worker_id": "w", "version": "'
        for _ in range(api.settings.max_body_bytes // len(chunk) + 2):
            yield chunk

    resp = await api.client.post(
        "/v1/workers/register",
        content=endless(),
        headers={**tenant.headers(Role.worker), "content-type": "application/json"},
    )
    assert "content-length" not in resp.request.headers
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "PayloadTooLarge"


async def test_list_filters_and_pagination(api: Api) -> None:
    tenant = await api.tenant()
    for i in range(5):
        await WorkerHandle(api, tenant, f"w{i}").register(labels=["gpu"] if i % 2 else [])
    page = (await api.client.get("/v1/workers?limit=2&offset=1", headers=tenant.headers())).json()
    assert [w["worker_id"] for w in page["items"]] == ["w1", "w2"] and page["total"] == 5
    gpu = (await api.client.get("/v1/workers?label=gpu", headers=tenant.headers())).json()
    assert [w["worker_id"] for w in gpu["items"]] == ["w1", "w3"]
    offline = (await api.client.get("/v1/workers?status=offline", headers=tenant.headers())).json()
    assert offline["total"] == 0
    bad = await api.client.get("/v1/workers?status=sleeping", headers=tenant.headers())
    assert bad.status_code == 422
    stats = (await api.client.get("/v1/workers/stats", headers=tenant.headers())).json()
    assert stats["workers"]["online"] == 5

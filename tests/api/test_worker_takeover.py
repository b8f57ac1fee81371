"""A live worker cannot be taken over: its instance_id is shown to nobody, and knowing it
(or anything else about the worker) grants nothing; only its session token does."""

from __future__ import annotations

from typing import Any

from facefleet.api.realtime.snapshot import build_snapshot
from facefleet.api.security import Principal, Role
from facefleet.api.storage.db import events_repo, workers_repo
from tests.fixtures.harness import Api, FakeClock, WorkerHandle, add_cameras

INSTANCE = "instance-7f3a9c"
PASSWORD = "Qx7campass"


def properties(schema: Any) -> set[str]:
    """Every property name anywhere in a JSON schema."""
    found: set[str] = set()
    if isinstance(schema, dict):
        found |= set(schema.get("properties", {}))
        for value in schema.values():
            found |= properties(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= properties(value)
    return found


async def test_the_instance_id_is_shown_to_nobody(api: Api) -> None:
    tenant = await api.tenant()
    await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "w1", instance_id=INSTANCE)
    assert (await worker.register()).status_code == 200
    assert (await worker.request_camera()).status_code == 200
    # A record written before the instance_id was left out of events still hides it.
    async with api.state.sessions() as session:
        row = await workers_repo.get(session, tenant.id, "w1")
        assert row is not None
        events_repo.record(session, tenant.id, row.id, "re-registered", instance_id=INSTANCE)
        await session.commit()
    seen = []
    for role in (Role.admin, Role.viewer):
        headers = tenant.headers(role)
        for path in ("/v1/workers", "/v1/workers/w1", "/v1/registry/workers", "/v1/workers/stats"):
            resp = await api.client.get(path, headers=headers)
            assert resp.status_code == 200, (path, resp.text)
            seen.append(resp.text)
    snapshot = await build_snapshot(api.state, Principal(tenant.id, Role.viewer, 0))
    seen.append(str(snapshot))
    replayed = await api.state.events.replay(tenant.id, 0)
    seen.append(str([e.as_message() for e in replayed or []]))
    assert all(INSTANCE not in text for text in seen)
    history = (await api.client.get("/v1/workers/w1", headers=tenant.headers())).json()["history"]
    assert [e["kind"] for e in history][:2] == ["registered", "camera_assigned"]

    schema = (await api.client.get("/openapi.json")).json()
    responses = [
        name
        for name, model in schema["components"]["schemas"].items()
        if "instance_id" in properties(model)
    ]
    assert responses == ["RegisterRequest"]  # what a worker sends; nothing answers with it


async def test_knowing_the_instance_id_does_not_take_over_a_live_worker(
    api: Api, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    resp = await api.client.post(
        "/v1/cameras",
        json={"name": "door", "source_url": f"rtsp://admin:{PASSWORD}@10.0.0.9/live"},
        headers=tenant.headers(),
    )
    camera_id = resp.json()["id"]
    real = WorkerHandle(api, tenant, "w1", instance_id=INSTANCE)
    assert (await real.register()).status_code == 200
    granted = (await real.request_camera()).json()["assignment"]
    assert granted["camera_id"] == camera_id and PASSWORD in granted["source_url"]

    # Whoever holds the tenant's worker key and read (or guessed) everything about it.
    impostor = WorkerHandle(api, tenant, "w1", instance_id=INSTANCE)
    for attempt in (
        await impostor.register(hostname="vm", capacity=1),
        await api.client.post(
            "/v1/registry/workers/register",
            json={"worker_id": "w1", "instance_id": INSTANCE},
            headers=tenant.headers(Role.worker),
        ),
        # A session token of another worker is no better.
        await api.client.post(
            "/v1/workers/register",
            json={"worker_id": "w1", "instance_id": INSTANCE},
            headers={**tenant.headers(Role.worker), "X-Worker-Session": "not-the-session"},
        ),
    ):
        assert attempt.status_code == 409, attempt.text
        body = attempt.json()
        assert body["error"] == "WorkerIdInUse"
        assert "X-Worker-Session" in body["detail"] and body["retry_after"] > 0
        assert "session_token" not in body and PASSWORD not in attempt.text
    assert impostor.session_token == ""
    # A viewer, who could read the worker's history, may not register at all.
    viewer = await api.client.post(
        "/v1/workers/register",
        json={"worker_id": "w1", "instance_id": INSTANCE},
        headers=tenant.headers(Role.viewer),
    )
    assert viewer.status_code == 403 and PASSWORD not in viewer.text
    clock.advance(1.0)

    # The real worker is untouched: same session, same camera, same epoch.
    beat = await real.heartbeat()
    assert beat.status_code == 200
    assert [(le["camera_id"], le["epoch"], le["valid"]) for le in beat.json()["leases"]] == [
        (camera_id, granted["epoch"], True)
    ]
    current = await api.client.get("/v1/workers/w1/camera", headers=real.headers)
    assert [a["camera_id"] for a in current.json()["assignments"]] == [camera_id]

    # Its holder may register again (a reconnect), keeping its camera.
    again = await api.client.post(
        "/v1/workers/register",
        json={"worker_id": "w1", "instance_id": "another-process"},
        headers=real.headers,
    )
    assert again.status_code == 200
    assert [le["camera_id"] for le in again.json()["leases"]] == [camera_id]


async def test_a_stale_session_may_be_replaced(api: Api, clock: FakeClock) -> None:
    tenant = await api.tenant()
    old = WorkerHandle(api, tenant, "w1")
    assert (await old.register()).status_code == 200
    new = WorkerHandle(api, tenant, "w1")
    refused = await new.register()
    assert refused.status_code == 409
    clock.advance(refused.json()["retry_after"])
    assert (await new.register()).status_code == 200
    assert (await old.heartbeat()).status_code == 403  # its session is gone
    assert (await new.heartbeat()).status_code == 200

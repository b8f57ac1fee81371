"""Operator control: the shutdown signal flow, commands, drain and undrain."""

from __future__ import annotations

from facefleet.api.background.flusher import Flusher
from facefleet.api.background.reaper import Reaper
from facefleet.api.security import Role
from tests.fixtures.harness import Api, FakeClock, WorkerHandle, add_cameras


async def test_worker_initiated_shutdown_frees_the_camera_at_once(api: Api) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    leaving, spare = WorkerHandle(api, tenant, "leaving"), WorkerHandle(api, tenant, "spare")
    await leaving.register()
    await spare.register()
    held = (await leaving.request_camera()).json()["assignment"]
    resp = await api.client.post(
        "/v1/workers/leaving/shutdown/signal",
        json={"reason": "SIGTERM", "source": "worker"},
        headers=leaving.headers,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["source"] == "worker" and body["released_cameras"] == [cam]
    assert body["status"] == "stopping"
    # No time passes: the spare gets the camera now, not after the lease TTL.
    got = (await spare.request_camera()).json()["assignment"]
    assert got["camera_id"] == cam and got["epoch"] == held["epoch"] + 1
    assert (await leaving.request_camera()).json()["assignment"] is None
    assert (await leaving.deregister()).status_code == 200
    history = (await api.client.get("/v1/workers/leaving", headers=tenant.headers())).json()
    kinds = [e["kind"] for e in history["history"]]
    assert kinds[-3:] == ["camera_released", "shutdown_signalled", "deregistered"]
    assert history["status"] == "deregistered"


async def test_operator_shutdown_reaches_the_worker_and_is_enforced(
    api: Api, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    stubborn = WorkerHandle(api, tenant, "stubborn")
    await stubborn.register()
    await stubborn.request_camera()
    resp = await api.client.post(
        "/v1/workers/stubborn/shutdown/signal",
        json={"mode": "immediate", "deadline_seconds": 3},
        headers=tenant.headers(),
    )
    assert resp.status_code == 200 and resp.json()["source"] == "operator"
    beat = (await stubborn.heartbeat()).json()
    assert beat["desired_state"] == "stop" and beat["stop_mode"] == "immediate"
    assert beat["status"] == "stopping"
    # It keeps heartbeating but never leaves: past the deadline the reaper forces it out.
    clock.advance(2)
    await stubborn.heartbeat()
    await Reaper(api.state).run_once()
    assert (await stubborn.heartbeat()).status_code == 200
    clock.advance(1.5)
    await stubborn.heartbeat()
    await Reaper(api.state).run_once()
    assert (await stubborn.heartbeat()).status_code == 404
    detail = (await api.client.get("/v1/workers/stubborn", headers=tenant.headers())).json()
    assert detail["status"] == "offline"
    offline = next(e for e in detail["history"] if e["kind"] == "offline")
    assert offline["detail"]["reason"] == "shutdown deadline passed"
    spare = WorkerHandle(api, tenant, "spare")
    await spare.register()
    # Forced out while its lease still ran: the camera waits until that lease would end,
    # because the stubborn worker may stream until then.
    assert (await spare.request_camera()).json()["assignment"] is None
    clock.advance(api.settings.lease_ttl)
    await spare.heartbeat()
    assert (await spare.request_camera()).json()["assignment"]["camera_id"] == cam


async def test_command_round_trip_idempotency_and_expiry(api: Api, clock: FakeClock) -> None:
    tenant = await api.tenant()
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    admin = tenant.headers()
    body = {"type": "set_config", "payload": {"fps": 3}, "idempotency_key": "k-1"}
    first = await api.client.post("/v1/workers/w/commands", json=body, headers=admin)
    assert first.status_code == 201 and first.json()["status"] == "pending"
    again = await api.client.post("/v1/workers/w/commands", json=body, headers=admin)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    command_id = first.json()["id"]

    delivered = (await worker.heartbeat()).json()["commands"]
    assert [(c["id"], c["type"], c["payload"]) for c in delivered] == [
        (command_id, "set_config", {"fps": 3})
    ]
    # At least once: a lost response loses nothing, the next heartbeat hands it out again.
    again_delivered = (await worker.heartbeat()).json()["commands"]
    assert [c["id"] for c in again_delivered] == [command_id]
    await Flusher(api.state).run_once()
    listed = await api.client.get("/v1/workers/w/commands", headers=tenant.headers(Role.viewer))
    assert listed.json()["items"][0]["status"] == "delivered"

    ack = await api.client.post(
        f"/v1/workers/w/commands/{command_id}/ack",
        json={"status": "acked", "result": {"applied": True}},
        headers=worker.headers,
    )
    assert ack.status_code == 200 and ack.json()["status"] == "acked"
    shown = await api.client.get(f"/v1/workers/w/commands/{command_id}", headers=admin)
    assert shown.json()["status"] == "acked" and shown.json()["result"] == {"applied": True}
    assert (await worker.heartbeat()).json()["commands"] == []  # acknowledged: done

    late = await api.client.post(
        "/v1/workers/w/commands", json={"type": "snapshot", "ttl_seconds": 5}, headers=admin
    )
    clock.advance(6)
    await worker.heartbeat()
    await Reaper(api.state).run_once()
    expired = await api.client.get(f"/v1/workers/w/commands/{late.json()['id']}", headers=admin)
    assert expired.json()["status"] == "expired"
    refused = await api.client.post(
        f"/v1/workers/w/commands/{late.json()['id']}/ack", json={}, headers=worker.headers
    )
    assert refused.status_code == 409


async def test_commands_wait_for_a_worker_that_re_registers(api: Api) -> None:
    tenant = await api.tenant()
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    sent = await api.client.post(
        "/v1/workers/w/commands", json={"type": "reload_gallery"}, headers=tenant.headers()
    )
    await worker.register()  # the restarted process gets the undelivered command
    commands = (await worker.heartbeat()).json()["commands"]
    assert [c["id"] for c in commands] == [sent.json()["id"]]


async def test_unknown_command_types_are_422(api: Api) -> None:
    tenant = await api.tenant()
    await WorkerHandle(api, tenant, "w").register()
    resp = await api.client.post(
        "/v1/workers/w/commands", json={"type": "self_destruct"}, headers=tenant.headers()
    )
    assert resp.status_code == 422 and "type" in resp.json()["detail"]


async def test_drain_hands_cameras_over_one_by_one_and_undrain(api: Api, clock: FakeClock) -> None:
    tenant = await api.tenant()
    cams = await add_cameras(api, tenant, 2)
    busy, idle = WorkerHandle(api, tenant, "busy"), WorkerHandle(api, tenant, "idle")
    await busy.register(capacity=2)
    await idle.register(capacity=2)
    await busy.request_camera()
    await busy.request_camera()
    drained = await api.client.post("/v1/workers/busy/drain", headers=tenant.headers())
    assert drained.json() == {"worker_id": "busy", "status": "draining", "desired_state": "drain"}
    beat = (await busy.heartbeat()).json()
    assert beat["desired_state"] == "drain" and len(beat["leases"]) == 2
    reaper = Reaper(api.state)
    await reaper.run_once()
    assert len((await busy.heartbeat()).json()["leases"]) == 1  # one at a time
    # The draining worker may stream the released camera until its lease deadline: nobody
    # else gets it before.
    assert (await idle.request_camera()).json()["assignment"] is None
    await reaper.run_once()  # same interval: nothing more yet
    assert len((await busy.heartbeat()).json()["leases"]) == 1
    clock.advance(api.settings.heartbeat_interval)
    await busy.heartbeat()
    await idle.heartbeat()
    await reaper.run_once()
    assert (await busy.heartbeat()).json()["leases"] == []
    clock.advance(api.settings.lease_ttl)
    await busy.heartbeat()
    await idle.heartbeat()
    first = (await idle.request_camera()).json()["assignment"]
    second = (await idle.request_camera()).json()["assignment"]
    assert sorted([first["camera_id"], second["camera_id"]]) == sorted(cams)
    assert (await busy.request_camera()).json()["assignment"] is None
    undrained = await api.client.post("/v1/workers/busy/undrain", headers=tenant.headers())
    assert undrained.json()["status"] == "online"
    assert (await busy.heartbeat()).json()["desired_state"] == "run"
    forbidden = await api.client.post("/v1/workers/busy/drain", headers=busy.headers)
    assert forbidden.status_code == 403

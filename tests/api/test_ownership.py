"""Camera ownership cannot drift: a change the database committed is never lost between the
database and the hot store, races end in a conflict or an idempotent success, and every
camera shows whether it is actually being processed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from facefleet.api.background.anti_entropy import full_pass, repair_pending
from facefleet.api.background.reaper import Reaper
from facefleet.api.cameras.tracker import CameraStateTracker
from facefleet.api.security import Role
from facefleet.api.storage.db.models import CameraLease
from tests.fixtures.harness import Api, FakeClock, Tenant, WorkerHandle, add_cameras


def fail_once(api: Api, method: str, exc: BaseException | None = None) -> list[str]:
    """The hot store's ``method`` fails once (Redis unreachable for a moment)."""
    hot = api.state.hot
    original: Callable[..., Awaitable[Any]] = getattr(hot, method)
    calls: list[str] = []

    async def failing(*args: Any, **kwargs: Any) -> Any:
        if not calls:
            calls.append(method)
            raise exc or ConnectionError("hot store unreachable")
        return await original(*args, **kwargs)

    setattr(hot, method, failing)
    return calls


async def leases_of(worker: WorkerHandle) -> list[tuple[int, int]]:
    body = (await worker.heartbeat()).json()
    return [(le["camera_id"], le["epoch"]) for le in body["leases"] if le["valid"]]


async def test_a_lease_the_hot_store_missed_is_answered_repaired_and_offered_again(
    api: Api,
) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "w")
    await worker.register(capacity=1)
    failed = fail_once(api, "add_lease")
    got = await worker.request_camera()
    # Committed in the database: the worker is told, never given an error for it.
    assert got.status_code == 200 and got.json()["assignment"]["camera_id"] == cam
    assert failed == ["add_lease"]
    assert await leases_of(worker) == []  # the hot store missed it...
    # ... and a camera request says what the worker holds, even at capacity.
    again = (await worker.request_camera()).json()
    assert again["assignment"] is None and "capacity" in again["reason"]
    assert [a["camera_id"] for a in again["held"]] == [cam]
    assert (tenant.id, "w") in api.state.repairs
    assert await repair_pending(api.state) == 1
    assert await leases_of(worker) == [(cam, 1)]
    assert api.state.repairs == set()


async def test_a_release_the_hot_store_missed_is_repaired(api: Api) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    await worker.request_camera()
    fail_once(api, "drop_lease")
    assert (await worker.release(cam, 1)).status_code == 200
    assert await leases_of(worker) == [(cam, 1)]  # stale in the hot store
    await repair_pending(api.state)
    assert await leases_of(worker) == []


async def test_a_write_through_that_finds_no_record_is_repaired(api: Api) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    hot = api.state.hot
    original = hot.add_lease

    async def vanished(tenant_id: str, worker_id: str, *args: Any, **kwargs: Any) -> Any:
        # The record expired between the commit and the write-through.
        await hot.remove_worker(tenant_id, worker_id)
        return await original(tenant_id, worker_id, *args, **kwargs)

    hot.add_lease = vanished  # type: ignore[method-assign]
    assert (await worker.request_camera()).json()["assignment"]["camera_id"] == cam
    hot.add_lease = original  # type: ignore[method-assign]
    await repair_pending(api.state)
    # Rebuilt from the database, lease included.
    assert await leases_of(worker) == [(cam, 1)]


async def test_the_leaders_full_pass_repairs_any_drift(api: Api, clock: FakeClock) -> None:
    tenant = await api.tenant()
    cams = await add_cameras(api, tenant, 2)
    worker = WorkerHandle(api, tenant, "w")
    await worker.register(capacity=2)
    await worker.request_camera()
    await worker.request_camera()
    now = clock()
    # Drift in both directions: a lease the database does not have, one it has missing.
    await api.state.hot.set_leases(tenant.id, "w", {cams[0]: 1, 999: 5}, now=now)
    assert await full_pass(api.state) == 1
    assert sorted(await leases_of(worker)) == [(cams[0], 1), (cams[1], 1)]
    assert await full_pass(api.state) == 0  # nothing left to repair


async def test_a_command_the_hot_store_missed_is_delivered_after_repair_or_a_repeat(
    api: Api,
) -> None:
    tenant = await api.tenant()
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    fail_once(api, "add_command")
    body = {"type": "reload_gallery", "idempotency_key": "k"}
    created = await api.client.post("/v1/workers/w/commands", json=body, headers=tenant.headers())
    assert created.status_code == 201  # committed: never a 503 for the hot store's failure
    assert (await worker.heartbeat()).json()["commands"] == []
    # The operator's idempotent retry makes it deliverable again...
    again = await api.client.post("/v1/workers/w/commands", json=body, headers=tenant.headers())
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    commands = (await worker.heartbeat()).json()["commands"]
    assert [c["id"] for c in commands] == [created.json()["id"]]
    # ... as does the repair, for a creation nobody retried.
    fail_once(api, "add_command")
    other = await api.client.post(
        "/v1/workers/w/commands", json={"type": "snapshot"}, headers=tenant.headers()
    )
    await repair_pending(api.state)
    ids = {c["id"] for c in (await worker.heartbeat()).json()["commands"]}
    assert ids == {created.json()["id"], other.json()["id"]}


async def test_concurrent_first_registrations_of_one_worker_id(api: Api) -> None:
    tenant = await api.tenant()
    first, second = WorkerHandle(api, tenant, "twin"), WorkerHandle(api, tenant, "twin")
    answers = await asyncio.gather(first.register(), second.register())
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 409], [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 409)
    assert refused.json()["error"] == "WorkerIdInUse"


async def test_concurrent_creations_with_one_idempotency_key_make_one_command(api: Api) -> None:
    tenant = await api.tenant()
    await WorkerHandle(api, tenant, "w").register()
    body = {"type": "snapshot", "idempotency_key": "once"}
    answers = await asyncio.gather(
        *(
            api.client.post("/v1/workers/w/commands", json=body, headers=tenant.headers())
            for _ in range(4)
        )
    )
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in answers}) == 1


async def test_concurrent_cameras_with_one_name(api: Api) -> None:
    tenant = await api.tenant()
    body = {"name": "gate", "source_url": "rtsp://10.0.0.1/s"}
    answers = await asyncio.gather(
        *(api.client.post("/v1/cameras", json=body, headers=tenant.headers()) for _ in range(3))
    )
    assert sorted(r.status_code for r in answers) == [201, 409, 409]
    assert all(r.json()["error"] == "Conflict" for r in answers if r.status_code == 409)


async def test_a_deleted_cameras_id_is_never_handed_out_again(api: Api) -> None:
    tenant = await api.tenant()
    (first,) = await add_cameras(api, tenant, 1, prefix="old")
    resp = await api.client.delete(f"/v1/cameras/{first}", headers=tenant.headers())
    assert resp.status_code == 204
    (second,) = await add_cameras(api, tenant, 1, prefix="new")
    assert second > first  # so (camera, epoch) pairs never repeat


async def test_a_source_no_worker_can_open_is_refused_at_creation(api: Api) -> None:
    tenant = await api.tenant()
    resp = await api.client.post(
        "/v1/cameras",
        json={"name": "front", "source_url": "device://front-door"},
        headers=tenant.headers(),
    )
    assert resp.status_code == 422 and "device" in resp.json()["detail"]


async def camera_view(api: Api, tenant: Tenant, cam: int) -> dict[str, Any]:
    body: dict[str, Any] = (
        await api.client.get(f"/v1/cameras/{cam}", headers=tenant.headers(Role.viewer))
    ).json()
    return body


def report(cam: int, epoch: int, state: str, **fields: Any) -> dict[str, Any]:
    return {"camera_id": cam, "epoch": epoch, "state": state, **fields}


async def test_cameras_show_whether_they_are_processed(api: Api, clock: FakeClock) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    assert (await camera_view(api, tenant, cam))["state"] == "unassigned"
    await worker.request_camera()
    shown = await camera_view(api, tenant, cam)
    assert (shown["state"], shown["worker_id"]) == ("starting", "w")

    async def beat(*streams: dict[str, Any]) -> None:
        resp = await api.client.post(
            "/v1/workers/w/heartbeat", json={"streams": list(streams)}, headers=worker.headers
        )
        assert resp.status_code == 200, resp.text

    await beat(report(cam, 1, "streaming", frames_processed=40, fps=5.0))
    shown = await camera_view(api, tenant, cam)
    assert (shown["state"], shown["fps"], shown["frames_processed"]) == ("streaming", 5.0, 40)
    await beat(report(cam, 1, "stalled", last_error="read timed out"))
    shown = await camera_view(api, tenant, cam)
    assert (shown["state"], shown["last_error"]) == ("stalled", "read timed out")

    # The stream fails: the worker gives the camera back with the reason.
    resp = await api.client.post(
        "/v1/workers/w/camera/release",
        json={"camera_id": cam, "epoch": 1, "error": "cannot open rtsp://***@cam"},
        headers=worker.headers,
    )
    assert resp.status_code == 200
    shown = await camera_view(api, tenant, cam)
    assert (shown["state"], shown["failures"]) == ("failing", 1)
    assert shown["last_error"] == "cannot open rtsp://***@cam"
    # It waits out its backoff before anyone gets it again...
    assert (await worker.request_camera()).json()["assignment"] is None
    clock.advance(api.settings.failing_backoff + 0.1)
    await worker.heartbeat()
    got = (await worker.request_camera()).json()["assignment"]
    assert got["camera_id"] == cam and got["epoch"] == 2
    # ... and once it streams again its failures start over.
    tracker = CameraStateTracker(api.state)
    await tracker.run_once()
    await beat(report(cam, 2, "streaming", frames_processed=3, fps=5.0))
    await tracker.run_once()
    shown = await camera_view(api, tenant, cam)
    assert (shown["state"], shown["failures"], shown["last_error"]) == ("streaming", 0, None)


async def test_camera_states_reach_metrics_and_events(api: Api, clock: FakeClock) -> None:
    tenant = await api.tenant()
    cams = await add_cameras(api, tenant, 3)
    worker = WorkerHandle(api, tenant, "w")
    await worker.register(capacity=2)
    await worker.request_camera()
    await worker.request_camera()
    await api.client.post(
        "/v1/workers/w/heartbeat",
        json={"streams": [report(cams[0], 1, "streaming", fps=5.0)]},
        headers=worker.headers,
    )
    subscription = api.state.events.subscribe(tenant.id)
    tracker = CameraStateTracker(api.state)
    assert await tracker.run_once() == 2  # both held cameras' states, once
    clock.advance(2)
    assert await tracker.run_once() == 0  # nothing changed
    events = []
    while not subscription.queue.empty():
        events.append(subscription.queue.get_nowait())
    api.state.events.unsubscribe(subscription)
    states = {e.data["camera_id"]: e.data["state"] for e in events if e.kind == "camera_state"}
    assert states == {cams[0]: "streaming", cams[1]: "starting"}
    text = (await api.client.get("/metrics")).text
    assert 'facefleet_cameras{state="streaming"} 1.0' in text
    assert 'facefleet_cameras{state="starting"} 1.0' in text
    assert 'facefleet_cameras{state="unassigned"} 1.0' in text
    # Two cameras not processed (one starting, one unassigned) for the 2 s between passes.
    assert "facefleet_camera_unprocessed_seconds_total 4.0" in text


async def test_draining_takes_a_camera_away_in_the_hot_store_before_the_database(
    api: Api, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    await worker.request_camera()
    await api.client.post("/v1/workers/w/drain", headers=tenant.headers())
    # The database cannot commit the release: the worker must already have stopped hearing
    # that its lease is valid, and the camera stays its in the database.
    session_factory = api.state.sessions

    class RefusingCommit:
        def __call__(self) -> Any:
            session = session_factory()

            async def refuse() -> None:
                raise ConnectionError("database unavailable")

            session.commit = refuse  # type: ignore[method-assign]
            return session

    api.state.sessions = RefusingCommit()  # type: ignore[assignment]
    with pytest.raises(ConnectionError):
        await Reaper(api.state)._drain_step(clock())
    api.state.sessions = session_factory
    assert await leases_of(worker) == []
    async with api.state.sessions() as session:
        lease = await session.scalar(select(CameraLease).where(CameraLease.camera_id == cam))
        assert lease is not None and lease.worker_pk is not None
    # The full pass gives the lease back; the next drain step releases it for real.
    await full_pass(api.state)
    assert await leases_of(worker) == [(cam, 1)]
    await Reaper(api.state)._drain_step(clock() + 10)
    assert (await camera_view(api, tenant, cam))["lease"]["worker_id"] is None

"""Exclusive camera assignment under concurrency, capacity, labels and ordering."""

from __future__ import annotations

import asyncio
from collections import Counter

from facefleet.api.security import Role
from tests.fixtures.harness import Api, WorkerHandle, add_cameras


async def test_fifty_workers_twenty_cameras_get_exactly_twenty_leases(api: Api) -> None:
    tenant = await api.tenant()
    cameras = await add_cameras(api, tenant, 20)
    workers = [WorkerHandle(api, tenant, f"w-{i:02d}") for i in range(50)]

    async def register_and_request(worker: WorkerHandle) -> tuple[int, dict[str, object]]:
        reg = await worker.register()
        assert reg.status_code == 200, reg.text
        resp = await worker.request_camera()
        return resp.status_code, resp.json()

    results = await asyncio.gather(*(register_and_request(w) for w in workers))

    statuses = Counter(code for code, _ in results)
    assert statuses == {200: 50}, statuses
    assigned = [body["assignment"] for _, body in results if body["assignment"] is not None]
    refused = [body for _, body in results if body["assignment"] is None]
    assert len(assigned) == 20
    assert sorted(a["camera_id"] for a in assigned) == sorted(cameras)  # type: ignore[index]
    assert len(refused) == 30
    assert all(r["retry_after"] and r["reason"] for r in refused)

    listed = await api.client.get("/v1/cameras?limit=100", headers=tenant.headers())
    holders = [c["lease"]["worker_id"] for c in listed.json()["items"]]
    assert len(set(holders)) == 20 and None not in holders
    stats = (await api.client.get("/v1/workers/stats", headers=tenant.headers())).json()
    assert stats["cameras"] == {"assigned": 20, "unassigned": 0, "disabled": 0}


async def test_capacity_labels_priority_and_sticky_preference(api: Api) -> None:
    tenant = await api.tenant()
    gpu_cam = (await add_cameras(api, tenant, 1, required_labels=["gpu"]))[0]
    low, high = await add_cameras(api, tenant, 2, prefix="plain")
    await api.client.patch(f"/v1/cameras/{high}", json={"priority": 5}, headers=tenant.headers())
    await api.client.patch(f"/v1/cameras/{low}", json={"name": "low"}, headers=tenant.headers())

    plain = WorkerHandle(api, tenant, "plain")
    assert (await plain.register(capacity=2)).status_code == 200
    first = (await plain.request_camera()).json()["assignment"]
    assert first["camera_id"] == high  # priority first
    second = (await plain.request_camera()).json()["assignment"]
    assert second["camera_id"] == low  # the gpu camera needs a label plain lacks
    full = (await plain.request_camera()).json()
    assert full["assignment"] is None and "capacity" in full["reason"]

    gpu = WorkerHandle(api, tenant, "gpu-1")
    await gpu.register(labels=["gpu"])
    got = (await gpu.request_camera()).json()["assignment"]
    assert got["camera_id"] == gpu_cam

    # Sticky: after releasing, the same worker gets its old camera back before a
    # higher-priority free one.
    assert (await plain.release(low, second["epoch"])).status_code == 200
    assert (await plain.release(high, first["epoch"])).status_code == 200
    other = WorkerHandle(api, tenant, "other")
    await other.register()
    assert (await other.request_camera()).json()["assignment"]["camera_id"] == high
    again = (await plain.request_camera()).json()["assignment"]
    assert again["camera_id"] == low and again["epoch"] == second["epoch"] + 1


async def test_release_with_stale_epoch_is_409(api: Api) -> None:
    tenant = await api.tenant()
    await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    assignment = (await worker.request_camera()).json()["assignment"]
    stale = await worker.release(assignment["camera_id"], assignment["epoch"] - 1)
    assert stale.status_code == 409
    assert stale.json()["error"] == "StaleEpoch"
    current = await api.client.get("/v1/workers/w/camera", headers=worker.headers)
    assert [a["camera_id"] for a in current.json()["assignments"]] == [assignment["camera_id"]]
    assert current.json()["assignments"][0]["source_url"] == "rtsp://10.0.0.0/s"


async def test_nothing_free_is_a_200_with_a_retry_hint(api: Api) -> None:
    tenant = await api.tenant()
    worker = WorkerHandle(api, tenant, "lonely")
    await worker.register()
    resp = await worker.request_camera()
    assert resp.status_code == 200
    body = resp.json()
    assert body["assignment"] is None
    assert body["retry_after"] == api.settings.retry_after


async def test_disabling_a_camera_revokes_its_lease(api: Api) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    await worker.request_camera()
    resp = await api.client.patch(
        f"/v1/cameras/{cam}", json={"enabled": False}, headers=tenant.headers()
    )
    assert resp.json()["lease"]["worker_id"] is None
    leases = (await worker.heartbeat()).json()["leases"]
    assert leases == []
    assert (await worker.request_camera()).json()["assignment"] is None
    assert Role.worker in tenant.keys

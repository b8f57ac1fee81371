"""Liveness: suspect, offline, released cameras, audit history, restart with grace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facefleet.api.background.reaper import Reaper
from tests.fixtures.harness import (
    Api,
    FakeClock,
    WorkerHandle,
    add_cameras,
    make_settings,
    running_api,
)


async def test_silent_worker_goes_suspect_then_offline_and_frees_its_camera(
    api: Api, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    silent = WorkerHandle(api, tenant, "silent")
    spare = WorkerHandle(api, tenant, "spare")
    await silent.register()
    await spare.register()
    assert (await silent.request_camera()).json()["assignment"]["camera_id"] == cam
    reaper = Reaper(api.state)
    settings = api.settings

    clock.advance(settings.heartbeat_interval * 2 + 0.1)
    await spare.heartbeat()
    await reaper.run_once()
    detail = (await api.client.get("/v1/workers/silent", headers=tenant.headers())).json()
    assert detail["status"] == "suspect"
    assert (await spare.request_camera()).json()["assignment"] is None  # still leased

    clock.advance(settings.lease_ttl)
    await spare.heartbeat()
    await reaper.run_once()
    detail = (await api.client.get("/v1/workers/silent", headers=tenant.headers())).json()
    assert detail["status"] == "offline"
    kinds = [e["kind"] for e in detail["history"]]
    assert kinds == ["registered", "camera_assigned", "suspect", "camera_released", "offline"]
    released = next(e for e in detail["history"] if e["kind"] == "camera_released")
    assert released["camera_id"] == cam and released["detail"]["reason"] == "lease expired"

    got = (await spare.request_camera()).json()["assignment"]
    assert got["camera_id"] == cam and got["epoch"] == 2
    resp = await silent.heartbeat()
    assert resp.status_code == 404 and resp.json()["error"] == "WorkerNotFound"
    assert "register" in resp.json()["detail"]


async def test_heartbeat_brings_a_suspect_back_online(api: Api, clock: FakeClock) -> None:
    tenant = await api.tenant()
    worker = WorkerHandle(api, tenant, "flaky")
    await worker.register()
    clock.advance(api.settings.heartbeat_interval * 2 + 0.1)
    await Reaper(api.state).run_once()
    body = (await worker.heartbeat({"fps": 4.5})).json()
    assert body["status"] == "online"
    from facefleet.api.background.flusher import Flusher

    assert await Flusher(api.state).run_once() == 1
    detail = (await api.client.get("/v1/workers/flaky", headers=tenant.headers())).json()
    assert [e["kind"] for e in detail["history"]] == ["registered", "suspect", "recovered"]
    assert detail["metrics"] == {"fps": 4.5}


async def test_cleanup_dry_run_reports_without_changing(api: Api, clock: FakeClock) -> None:
    tenant = await api.tenant()
    await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "gone")
    await worker.register()
    cam = (await worker.request_camera()).json()["assignment"]["camera_id"]
    clock.advance(api.settings.lease_ttl + 1)
    dry = await api.client.post("/v1/workers/cleanup?dry_run=true", headers=tenant.headers())
    assert dry.json() == {
        "dry_run": True,
        "changes": [
            {
                "worker_id": "gone",
                "from_status": "online",
                "to_status": "offline",
                "released_cameras": [cam],
            }
        ],
    }
    still = (await api.client.get("/v1/workers/gone", headers=tenant.headers())).json()
    assert still["status"] == "online"
    real = await api.client.post("/v1/workers/cleanup", headers=tenant.headers())
    assert real.json()["changes"][0]["to_status"] == "offline"
    after = (await api.client.get("/v1/workers/gone", headers=tenant.headers())).json()
    assert after["status"] == "offline" and after["cameras"] == []


async def test_restart_keeps_workers_leases_and_epochs(
    database_url: str, hot_settings: dict[str, Any], tmp_path: Path, clock: FakeClock
) -> None:
    settings = make_settings(tmp_path, database_url, **hot_settings)
    async with running_api(settings, clock) as api:
        tenant = await api.tenant()
        await add_cameras(api, tenant, 3)
        keeper = WorkerHandle(api, tenant, "keeper")
        quitter = WorkerHandle(api, tenant, "quitter")
        await keeper.register()
        await quitter.register()
        kept = (await keeper.request_camera()).json()["assignment"]
        lost = (await quitter.request_camera()).json()["assignment"]
        before = (await api.client.get("/v1/cameras", headers=tenant.headers())).json()

    clock.advance(1.0)
    async with running_api(settings, clock) as api:
        keeper.api = quitter.api = api
        after = (await api.client.get("/v1/cameras", headers=tenant.headers())).json()
        assert after == before  # cameras, holders and epochs intact
        listed = (await api.client.get("/v1/workers", headers=tenant.headers())).json()
        assert {w["worker_id"]: w["status"] for w in listed["items"]} == {
            "keeper": "online",
            "quitter": "online",
        }
        # Within the grace the keeper heartbeats: its lease is still valid.
        clock.advance(api.settings.lease_ttl - 1)
        beat = (await keeper.heartbeat()).json()
        assert beat["leases"] == [
            {
                "camera_id": kept["camera_id"],
                "epoch": kept["epoch"],
                "valid": True,
                "expires_in": api.settings.lease_ttl,
            }
        ]
        # The quitter never came back: after the grace it is offline, its camera free.
        clock.advance(1.5)
        await keeper.heartbeat()
        await Reaper(api.state).run_once()
        other = WorkerHandle(api, tenant, "newcomer")
        await other.register()
        got = (await other.request_camera()).json()["assignment"]
        assert got["camera_id"] in {lost["camera_id"], *[c["id"] for c in after["items"]]}
        quit_detail = await api.client.get("/v1/workers/quitter", headers=tenant.headers())
        assert quit_detail.json()["status"] == "offline"


async def test_a_control_plane_down_longer_than_the_ttl_evicts_no_one(
    database_url: str, hot_settings: dict[str, Any], tmp_path: Path, clock: FakeClock
) -> None:
    settings = make_settings(tmp_path, database_url, **hot_settings)
    async with running_api(settings, clock) as api:
        tenant = await api.tenant()
        await add_cameras(api, tenant, 1)
        worker = WorkerHandle(api, tenant, "patient")
        await worker.register()
        held = (await worker.request_camera()).json()["assignment"]

    # Every replica was down for three lease TTLs: the worker could not heartbeat.
    clock.advance(3 * settings.lease_ttl)
    async with running_api(settings, clock) as api:
        worker.api = api
        assert await Reaper(api.state).run_once() == []
        beat = (await worker.heartbeat()).json()
        assert [(le["camera_id"], le["epoch"], le["valid"]) for le in beat["leases"]] == [
            (held["camera_id"], held["epoch"], True)
        ]


async def test_background_reaper_runs_in_the_lifespan(
    database_url: str, hot_settings: dict[str, Any], tmp_path: Path
) -> None:
    import asyncio

    settings = make_settings(
        tmp_path,
        database_url,
        **hot_settings,
        run_background=True,
        heartbeat_interval=0.1,
        lease_ttl=0.4,
        reaper_period=0.05,
        flush_period=0.1,
    )
    async with running_api(settings) as api:
        tenant = await api.tenant()
        await add_cameras(api, tenant, 1)
        worker = WorkerHandle(api, tenant, "brief")
        await worker.register()
        await worker.request_camera()
        for _ in range(100):
            await asyncio.sleep(0.05)
            detail = (await api.client.get("/v1/workers/brief", headers=tenant.headers())).json()
            if detail["status"] == "offline":
                break
        assert detail["status"] == "offline"
        assert detail["last_seen_at"] is not None


async def test_the_collector_is_tuned_while_the_app_runs(
    database_url: str, hot_settings: dict[str, Any], tmp_path: Path
) -> None:
    import gc

    from facefleet.api.gc_tuning import YOUNG_GENERATION

    before = gc.get_threshold()
    settings = make_settings(tmp_path, database_url, **hot_settings)
    async with running_api(settings) as api:
        assert gc.get_freeze_count() > 10_000  # the imported and started app
        assert gc.get_threshold()[0] >= YOUNG_GENERATION
        assert (await api.client.get("/healthz")).status_code == 200
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0

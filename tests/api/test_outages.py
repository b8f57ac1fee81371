"""Two replicas and a running fleet through a Redis that restarts empty and a PostgreSQL that
stops. Each test runs its own private server (never the machine's shared ones) and kills or
stops it while simulated workers keep working; the lease invariant is sampled throughout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from facefleet.api.storage.hot.redis import RedisHotStore
from tests.fixtures.harness import WorkerHandle, make_settings, running_api
from tests.fixtures.private_services import PrivatePostgres, PrivateRedis
from tests.fixtures.replica_set import (
    INTERVAL,
    LEASE_TTL,
    add_cameras,
    keys_of,
    start_replicas,
    worker_status,
)
from tests.fixtures.services import (
    REDIS_URL,
    create_pg_database,
    create_redis_prefix,
    delete_redis_prefix,
    drop_pg_database,
)
from tests.fixtures.sim_fleet import Sampler, SimWorker, holders

WORKERS = 10
CAMERAS = 6


@pytest.fixture
def database_url() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


def total(workers: list[SimWorker], attribute: str, status: str) -> int:
    return sum(getattr(w, attribute)[status] for w in workers)


async def test_redis_restarted_empty_while_workers_run(tmp_path: Path, database_url: str) -> None:
    redis_server = PrivateRedis(tmp_path / "redis")
    redis_server.start()
    replicas = start_replicas(tmp_path, database_url, redis_server.url, "facefleet:")
    hot = RedisHotStore.from_url(redis_server.url)
    keys = keys_of(tmp_path)
    urls = [plane.url for plane in replicas]
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            cameras = await add_cameras(http, urls[0], keys["admin"], CAMERAS)
            workers = [
                SimWorker(f"w{i:02d}", urls, keys["worker"], http, LEASE_TTL, INTERVAL)
                for i in range(WORKERS)
            ]
            sampler = Sampler(workers, cameras, hot=hot)
            sampler.start()
            for worker in workers:
                worker.start()
            try:
                await sampler.wait_all_streamed(30)
                await asyncio.sleep(1.0)
                before = holders(workers)
                grants_before = sum(len(w.grants) for w in workers)

                # Down for longer than the workers' self-fence: every camera stops, and no
                # heartbeat can succeed until Redis is back, empty.
                redis_server.kill()
                await asyncio.sleep(LEASE_TTL)
                assert sampler.streamed() == set()
                redis_server.start()
                back = time.monotonic()
                recovered_in = await sampler.wait_all_streamed(LEASE_TTL)
                await asyncio.sleep(2 * LEASE_TTL)  # and it stays that way
                after = holders(workers)
            finally:
                await sampler.stop()
                for worker in workers:
                    await worker.stop()
    finally:
        await hot.close()
        for plane in replicas:
            plane.stop()
        redis_server.stop()

    assert sampler.violations == []
    assert sampler.epochs_increase() == []
    # Every camera is streamed again within one lease TTL of Redis being back, by the worker
    # that held it: registration (or the leader's replay of the database) kept the leases,
    # so nothing was reassigned.
    assert sampler.longest_gap_after(back) <= LEASE_TTL
    assert after == before
    assert sum(len(w.grants) for w in workers) == grants_before
    print(f"all cameras streamed again {recovered_in:.1f}s after Redis came back")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = create_redis_prefix()
    yield prefix
    delete_redis_prefix(prefix)


async def test_postgresql_stopped_while_workers_run(tmp_path: Path, redis_prefix: str) -> None:
    postgres = PrivatePostgres()
    replicas = []
    try:
        postgres.start()
        # Keys are verified for a second only: heartbeats must outlive the key cache.
        replicas = start_replicas(
            tmp_path,
            postgres.url(),
            REDIS_URL,
            redis_prefix,
            env={"FACEFLEET_AUTH_CACHE_SECONDS": "1"},
        )
        await run_through_a_database_outage(tmp_path, [p.url for p in replicas], postgres)
    finally:
        for plane in replicas:
            plane.stop()
        postgres.destroy()


async def run_through_a_database_outage(
    tmp_path: Path, urls: list[str], postgres: PrivatePostgres
) -> None:
    keys = keys_of(tmp_path)
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    async with httpx.AsyncClient(timeout=5) as http:
        cameras = await add_cameras(http, urls[0], keys["admin"], CAMERAS)
        workers = [
            SimWorker(f"w{i:02d}", urls, keys["worker"], http, LEASE_TTL, INTERVAL)
            for i in range(WORKERS)
        ]
        sampler = Sampler(workers, cameras)
        sampler.start()
        for worker in workers:
            worker.start()
        try:
            await sampler.wait_all_streamed(30)
            await asyncio.sleep(1.0)
            victim = next(w for w in workers if w.streaming())
            (victim_camera,) = victim.streaming()

            await asyncio.to_thread(postgres.stop)
            down = time.monotonic()
            beats_before = total(workers, "heartbeat_statuses", "200")
            await victim.stop()  # dies during the outage, holding its camera
            # Database operations fail with 503 and say why; the probe names the database.
            cameras_resp = await http.get(f"{urls[0]}/v1/cameras", headers=admin)
            assert cameras_resp.status_code == 503, cameras_resp.text
            assert cameras_resp.json()["error"] == "ServiceUnavailable"
            assert "database" in cameras_resp.json()["detail"]
            newcomer = SimWorker("newcomer", urls, keys["worker"], http, LEASE_TTL, INTERVAL)
            await newcomer.register()
            assert newcomer.token == "" and newcomer.statuses["503"] == 1
            ready = await http.get(f"{urls[1]}/readyz")
            assert ready.status_code == 503
            assert ready.json()["detail"].startswith("database unreachable")
            await asyncio.sleep(2 * LEASE_TTL)
            outage = (down, time.monotonic())

            # Heartbeats of the workers holding leases kept working: their cameras never
            # stopped. The victim's camera cannot move while the database is down.
            assert total(workers, "heartbeat_statuses", "200") > beats_before + WORKERS
            assert total(workers, "heartbeat_statuses", "503") == 0
            kept = [c for c in cameras if c != victim_camera]
            for camera in kept:
                for start, end in sampler.gaps.get(camera, []):
                    assert end <= outage[0] or start >= outage[1], (camera, start, end)
            assert victim_camera not in sampler.streamed()

            await asyncio.to_thread(postgres.start)
            back = time.monotonic()
            # Everything converges: the victim is declared offline, its camera moves to a
            # spare, the API answers again and accepts new workers.
            while not any(victim_camera in w.streaming() for w in workers if w is not victim):
                assert time.monotonic() - back < 15, "the victim's camera was not reassigned"
                await asyncio.sleep(0.1)
            converged = time.monotonic() - back
            status = await worker_status(http, urls[0], keys["admin"], victim.worker_id)
            assert status == "offline"
            assert (await http.get(f"{urls[1]}/v1/cameras", headers=admin)).status_code == 200
            await newcomer.register()
            assert newcomer.token
            await sampler.wait_all_streamed(LEASE_TTL)
        finally:
            await sampler.stop()
            for worker in workers:
                await worker.stop()
    assert sampler.violations == []
    assert sampler.epochs_increase() == []
    print(f"victim's camera reassigned {converged:.1f}s after PostgreSQL came back")


async def test_requests_needing_redis_are_503_and_recover_by_themselves(tmp_path: Path) -> None:
    redis_server = PrivateRedis(tmp_path / "redis")
    redis_server.start()
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}",
        redis_url=redis_server.url,
        redis_prefix="facefleet:",
    )
    try:
        async with running_api(settings) as api:
            tenant = await api.tenant()
            worker = WorkerHandle(api, tenant, "w1")
            assert (await worker.register()).status_code == 200

            redis_server.kill()
            ready = await api.client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["detail"].startswith("hot store unreachable: ")
            assert ready.json()["checks"] == {"database": "ok", "hot_store": "unreachable"}
            for resp in (
                await worker.heartbeat(),
                await api.client.get("/v1/workers", headers=tenant.headers()),
            ):
                assert resp.status_code == 503, resp.text
                assert resp.json()["error"] == "ServiceUnavailable"
                assert resp.json()["detail"].startswith("hot store unavailable")
                assert resp.headers["Retry-After"] == "1"

            redis_server.start()  # empty
            assert (await api.client.get("/readyz")).status_code == 200
            # The record was lost with Redis: the worker is told to register again.
            assert (await worker.heartbeat()).status_code == 404
            assert (await worker.register()).status_code == 200
            assert (await worker.heartbeat()).status_code == 200
    finally:
        redis_server.stop()

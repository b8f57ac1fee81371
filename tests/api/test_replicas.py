"""Two control-plane processes on one PostgreSQL database and one Redis prefix, with twenty
simulated workers sending each request to a random replica: the lease invariant holds at
every sampled moment, a WebSocket client on one replica sees what happens through the other,
and killing the replica that holds the leader lock moves reaping to the other."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from facefleet.api.storage.hot.redis import RedisHotStore
from tests.fixtures.fleet import ControlPlane
from tests.fixtures.replica_set import (
    INTERVAL,
    LEADER_LOCK_TTL,
    LEASE_TTL,
    add_cameras,
    keys_of,
    start_replicas,
    tenant_of,
    worker_status,
)
from tests.fixtures.services import (
    REDIS_URL,
    create_pg_database,
    create_redis_prefix,
    delete_redis_prefix,
    drop_pg_database,
)
from tests.fixtures.sim_fleet import Sampler, SimWorker

WORKERS = 20
CAMERAS = 10


@pytest.fixture
def database_url() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = create_redis_prefix()
    yield prefix
    delete_redis_prefix(prefix)


@pytest.fixture
def replicas(tmp_path: Path, database_url: str, redis_prefix: str) -> Iterator[list[ControlPlane]]:
    started = start_replicas(tmp_path, database_url, REDIS_URL, redis_prefix)
    yield started
    for plane in started:
        plane.stop()


@pytest.fixture
async def hot(redis_prefix: str) -> AsyncIterator[RedisHotStore]:
    store = RedisHotStore.from_url(REDIS_URL, prefix=redis_prefix)
    yield store
    await store.close()


async def next_message(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def leader_pid(hot: RedisHotStore) -> int | None:
    value = await hot.client.get(f"{hot.prefix}leader")
    # <hostname>:<pid>:<random>:<fencing token>
    return int(str(value).split(":")[-3]) if value else None


async def test_two_replicas_one_fleet(
    replicas: list[ControlPlane], hot: RedisHotStore, tmp_path: Path
) -> None:
    a, b = replicas
    keys, tenant_id = keys_of(tmp_path), tenant_of(tmp_path)
    async with httpx.AsyncClient(timeout=5) as http:
        cameras = await add_cameras(http, a.url, keys["admin"], CAMERAS)
        workers = [
            SimWorker(f"w{i:02d}", [a.url, b.url], keys["worker"], http, LEASE_TTL, INTERVAL)
            for i in range(WORKERS)
        ]
        sampler = Sampler(workers, cameras, hot=hot)
        sampler.start()
        ws_url = f"ws://127.0.0.1:{a.port}/v1/workers/ws/{tenant_id}"
        viewer = {"Authorization": f"Bearer {keys['viewer']}"}
        try:
            async with connect(ws_url, additional_headers=viewer) as ws:
                snapshot = await next_message(ws)
                assert snapshot["type"] == "snapshot"
                for worker in workers:
                    worker.start()
                await sampler.wait_all_streamed(30)

                # Caused through replica B only, seen by the client of replica A, in order.
                probe = SimWorker("probe-b", [b.url], keys["worker"], http, LEASE_TTL, INTERVAL)
                await probe.register()
                assert probe.token
                seqs = [snapshot["seq"]]
                while True:
                    message = await next_message(ws)
                    seqs.append(message["seq"])
                    if message["kind"] == "registered" and message["data"]["worker_id"] == (
                        "probe-b"
                    ):
                        break
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs

            # The replica holding the leader lock dies; the other takes the lock over.
            pids = {a.process.pid: a, b.process.pid: b}  # type: ignore[union-attr]
            holder = pids[await leader_pid(hot) or -1]
            survivor = b if holder is a else a
            assert survivor.process is not None
            holder.stop(signal.SIGKILL)
            killed_at = time.monotonic()
            while await leader_pid(hot) != survivor.process.pid:
                assert time.monotonic() - killed_at < LEADER_LOCK_TTL + 3, "no takeover"
                await asyncio.sleep(0.1)
            takeover = time.monotonic() - killed_at

            # A worker stopped afterwards is still declared offline and its camera moves on.
            victim = next(w for w in workers if w.streaming())
            (camera,) = victim.streaming()
            await victim.stop()
            stopped_at = time.monotonic()
            while not any(camera in w.streaming() for w in workers if w is not victim):
                assert time.monotonic() - stopped_at < LEASE_TTL + 6, "camera not reassigned"
                await asyncio.sleep(0.05)
            reassigned = time.monotonic() - stopped_at
            status = await worker_status(http, survivor.url, keys["admin"], victim.worker_id)
            assert status == "offline"
            assert reassigned >= LEASE_TTL - 1.0  # not before the victim's lease could lapse

            await asyncio.sleep(2 * INTERVAL)  # keep sampling after the failover
        finally:
            await sampler.stop()
            for worker in workers:
                await worker.stop()

    assert sampler.violations == []
    assert sampler.epochs_increase() == []
    assert sampler.samples > 200
    assert takeover < LEADER_LOCK_TTL + 2
    print(f"leader takeover {takeover:.1f}s, camera reassigned {reassigned:.1f}s after the stop")


def test_replicas_started_together_on_an_empty_database_all_come_up(
    tmp_path: Path, database_url: str, redis_prefix: str
) -> None:
    started = start_replicas(tmp_path, database_url, REDIS_URL, redis_prefix, together=True)
    try:
        keys = keys_of(tmp_path)  # the default tenant exists once, with its keys file
        for plane in started:
            assert plane.process is not None and plane.process.poll() is None
            resp = httpx.get(
                f"{plane.url}/v1/workers", headers={"Authorization": f"Bearer {keys['admin']}"}
            )
            assert resp.status_code == 200, plane.log()[-2000:]
    finally:
        for plane in started:
            plane.stop()


async def test_a_key_revoked_on_one_replica_is_refused_by_the_other_at_once(
    replicas: list[ControlPlane], tmp_path: Path
) -> None:
    a, b = replicas
    admin = {"Authorization": f"Bearer {keys_of(tmp_path)['admin']}"}
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await http.post(f"{a.url}/v1/keys", json={"role": "viewer"}, headers=admin)
        assert resp.status_code == 201, resp.text
        created = resp.json()
        key = {"Authorization": f"Bearer {created['key']}"}
        for plane in (a, b):  # each replica has the key in its auth cache (30 s)
            assert (await http.get(f"{plane.url}/v1/whoami", headers=key)).status_code == 200
        resp = await http.delete(f"{a.url}/v1/keys/{created['id']}", headers=admin)
        assert resp.status_code == 200, resp.text
        revoked = time.monotonic()
        assert (await http.get(f"{a.url}/v1/whoami", headers=key)).status_code == 401
        while (await http.get(f"{b.url}/v1/whoami", headers=key)).status_code == 200:
            assert time.monotonic() - revoked < 1.0, "replica b still accepts the revoked key"
            await asyncio.sleep(0.01)
        print(f"refused by the other replica {time.monotonic() - revoked:.3f}s after")


def test_replicas_share_one_rate_limit_bucket_per_key(
    tmp_path: Path, database_url: str, redis_prefix: str
) -> None:
    burst = 4
    env = {"FACEFLEET_RATE_LIMIT": "0.2", "FACEFLEET_RATE_LIMIT_BURST": str(burst)}
    started = start_replicas(tmp_path, database_url, REDIS_URL, redis_prefix, env=env)
    try:
        viewer = {"Authorization": f"Bearer {keys_of(tmp_path)['viewer']}"}
        answers = [
            httpx.get(f"{started[i % 2].url}/v1/cameras", headers=viewer) for i in range(burst + 2)
        ]
        # Alternating replicas spend one bucket: the burst in all, then both refuse.
        assert [r.status_code for r in answers] == [200] * burst + [429, 429]
        assert all(r.headers["Retry-After"] for r in answers[burst:])
    finally:
        for plane in started:
            plane.stop()

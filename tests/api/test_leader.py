"""The leader lock: one holder among contenders, takeover once the holder stops renewing, and
no pass (nor any database commit within one) by a replica that lost the lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from facefleet.api.background.leader import LostLeadership, RedisLeaderLock, when_leading
from facefleet.api.background.reaper import Reaper
from facefleet.api.storage.hot.redis import connect
from tests.fixtures.harness import Api, FakeClock, WorkerHandle, add_cameras
from tests.fixtures.services import REDIS_URL, create_redis_prefix, delete_redis_prefix

TTL = 0.6


@pytest.fixture
def prefix() -> Iterator[str]:
    created = create_redis_prefix()
    yield created
    delete_redis_prefix(created)


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    redis_client = connect(REDIS_URL)
    yield redis_client
    await redis_client.aclose()


def contender(client: aioredis.Redis, prefix: str, name: str) -> RedisLeaderLock:
    return RedisLeaderLock(client, f"{prefix}leader", ttl=TTL, identity=name)


async def test_of_two_contenders_exactly_one_leads(client: aioredis.Redis, prefix: str) -> None:
    a, b = contender(client, prefix, "a"), contender(client, prefix, "b")
    results = await asyncio.gather(a.tick(), b.tick())
    assert sorted(results) == [False, True]
    leader, other = (a, b) if results[0] else (b, a)
    assert leader.leading() and await leader.confirm()
    assert not other.leading() and not await other.confirm()
    for _ in range(5):  # renewals keep it; the other keeps failing
        await asyncio.sleep(TTL / 3)
        assert await leader.tick()
        assert not await other.tick()
    assert await client.get(f"{prefix}leader") == f"{leader.identity}:{leader.token}"


async def test_the_other_takes_over_once_the_leader_stops_renewing(
    client: aioredis.Redis, prefix: str
) -> None:
    a, b = contender(client, prefix, "a"), contender(client, prefix, "b")
    assert await a.tick()
    assert not await b.tick()
    first_token = a.token
    # A stops renewing (dead, or paused): by its own clock it stops leading before the lock
    # can expire in Redis, so the two never both count themselves leader.
    await asyncio.sleep(TTL)
    assert not a.leading()
    took_over_after = 0.0
    while not await b.tick():
        await asyncio.sleep(0.05)
        took_over_after += 0.05
        assert took_over_after < 2 * TTL
    assert b.token is not None and first_token is not None and b.token > first_token
    # The old leader, back, finds the lock taken: its renewal fails and it stays a follower.
    assert not await a.tick()
    assert a.token is None and not await a.confirm()


async def test_a_released_lock_is_taken_at_once(client: aioredis.Redis, prefix: str) -> None:
    a, b = contender(client, prefix, "a"), contender(client, prefix, "b")
    assert await a.tick()
    await a.release()
    assert not a.leading()
    assert await b.tick()


async def test_a_stale_leader_does_not_run_its_pass(client: aioredis.Redis, prefix: str) -> None:
    now = [0.0]
    stale = RedisLeaderLock(
        client, f"{prefix}leader", ttl=TTL, identity="stale", monotonic=lambda: now[0]
    )
    assert await stale.tick()
    # Its process was paused: by its own (frozen) clock it still leads, but the lock expired
    # in Redis and another replica holds it now.
    await asyncio.sleep(TTL + 0.1)
    fresh = contender(client, prefix, "fresh")
    assert await fresh.tick()
    assert stale.leading()
    ran: list[str] = []

    async def the_pass() -> None:
        ran.append("stale")

    await when_leading(stale, the_pass, "reaper")()
    assert ran == []
    assert not await stale.confirm()


class FlippingLeadership:
    """Leads when the pass starts, loses the lock before its first commit."""

    def __init__(self) -> None:
        self.checks = 0

    def leading(self) -> bool:
        return True

    async def confirm(self) -> bool:
        self.checks += 1
        return self.checks == 1

    async def run(self) -> None:
        return None

    async def release(self) -> None:
        return None

    async def vacant(self) -> bool:
        return False


async def test_a_leader_that_loses_the_lock_mid_pass_commits_nothing(
    api: Api, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "silent")
    await worker.register()
    assert (await worker.request_camera()).json()["assignment"]["camera_id"] == cam
    clock.advance(api.settings.lease_ttl + 1)
    leadership = FlippingLeadership()
    await when_leading(leadership, Reaper(api.state, leadership).run_once, "reaper")()
    assert leadership.checks == 2  # the check before the pass, then the one before commit
    # The database still shows the lease: the stale pass released nothing.
    cameras = (await api.client.get("/v1/cameras", headers=tenant.headers())).json()["items"]
    assert cameras[0]["lease"]["worker_id"] == "silent"
    lost = FlippingLeadership()
    lost.checks = 1  # every check from now on fails
    with pytest.raises(LostLeadership):
        await Reaper(api.state, lost).run_once()
    # A leader that keeps the lock finishes the job.
    await Reaper(api.state).run_once()
    cameras = (await api.client.get("/v1/cameras", headers=tenant.headers())).json()["items"]
    assert cameras[0]["lease"]["worker_id"] is None

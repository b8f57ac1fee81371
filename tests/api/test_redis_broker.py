"""The Redis event broker as two replicas see it: one global, gap-free sequence per tenant,
replay from either replica, bounded client queues, and recovery of what the listener missed
while its connection was down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from facefleet.api.events.broker import Event, Subscription
from facefleet.api.events.redis_broker import WATCH_REFRESH, RedisEventBroker
from facefleet.api.storage.hot.redis import connect
from tests.fixtures.private_services import PrivateRedis
from tests.fixtures.services import REDIS_URL, create_redis_prefix, delete_redis_prefix


@contextlib.asynccontextmanager
async def replica(url: str, prefix: str, **options: object) -> AsyncIterator[RedisEventBroker]:
    client = connect(url)
    broker = RedisEventBroker(client, prefix=prefix, **options)  # type: ignore[arg-type]
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()
        await client.aclose()


@pytest.fixture
def prefix() -> Iterator[str]:
    created = create_redis_prefix()
    yield created
    delete_redis_prefix(created)


async def until(check: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


async def collect(sub: Subscription, count: int, timeout: float = 5.0) -> list[Event]:
    out: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            out.append(await sub.queue.get())
    return out


async def test_two_replicas_see_one_ordered_gap_free_sequence(prefix: str) -> None:
    async with replica(REDIS_URL, prefix) as a, replica(REDIS_URL, prefix) as b:
        on_a, on_b = a.subscribe("t1"), b.subscribe("t1")
        other = a.subscribe("t2")

        async def publish(broker: RedisEventBroker, name: str) -> None:
            for i in range(25):
                await broker.publish("t1", "tick", {"from": name, "i": i})

        await asyncio.gather(publish(a, "a"), publish(b, "b"), b.publish("t2", "other", {}))
        seen_a, seen_b = await collect(on_a, 50), await collect(on_b, 50)
        assert [e.seq for e in seen_a] == list(range(1, 51))
        assert seen_a == seen_b  # same events, same order, on both replicas
        for name in ("a", "b"):  # each publisher's own order is kept
            mine = [e.data["i"] for e in seen_a if e.data["from"] == name]
            assert mine == list(range(25))
        assert [e.kind for e in await collect(other, 1)] == ["other"]
        assert await a.current_seq("t1") == await b.current_seq("t1") == 50

        replayed = await b.replay("t1", 40)
        assert replayed is not None and [e.seq for e in replayed] == list(range(41, 51))
        assert replayed == seen_a[40:]
        assert await a.replay("t1", 50) == []
        assert await a.replay("t1", 51) is None


async def test_replay_refuses_what_the_capped_log_no_longer_holds(prefix: str) -> None:
    async with replica(REDIS_URL, prefix, replay_buffer=10) as broker:
        for i in range(300):
            await broker.publish("t1", "tick", {"i": i})
        assert await broker.replay("t1", 0) is None  # trimmed (MAXLEN ~ keeps at least 10)
        recent = await broker.replay("t1", 295)
        assert recent is not None and [e.data["i"] for e in recent] == [295, 296, 297, 298, 299]
        length = await broker._client.xlen(f"{prefix}events:log:t1")
        assert 10 <= length < 300


async def test_a_client_that_does_not_read_overflows_and_is_counted(prefix: str) -> None:
    dropped: list[int] = []
    async with replica(
        REDIS_URL, prefix, client_queue=8, on_drop=lambda: dropped.append(1)
    ) as broker:
        slow = broker.subscribe("t1")
        for i in range(20):
            await broker.publish("t1", "tick", {"i": i})
        await until(lambda: broker.drops >= 12, 5)
        assert slow.overflowed.is_set()
        assert slow.queue.qsize() == 8
        assert broker.drops == len(dropped) == 12
        assert slow.ended is None  # overflow, not a restart


async def test_watched_tenants_are_known_to_every_replica(prefix: str) -> None:
    async with replica(REDIS_URL, prefix) as a, replica(REDIS_URL, prefix) as b:
        a.subscribe("watched-on-a")
        await until(lambda: "watched-on-a" in b.tenants_watched(), 5 * WATCH_REFRESH)
        assert "watched-on-a" in a.tenants_watched()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def test_events_missed_while_the_listener_was_cut_off_are_delivered(
    private_redis: PrivateRedis,
) -> None:
    async with replica(private_redis.url, "p:") as a, replica(private_redis.url, "p:") as b:
        sub = a.subscribe("t1")
        await b.publish("t1", "before", {})
        assert [e.seq for e in await collect(sub, 1)] == [1]
        admin = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
        try:
            # Cut replica A's subscription (a private Redis: no one else's is touched) and
            # publish before its listener is back.
            assert await admin.client_kill_filter(_type="pubsub") >= 2
            for i in range(5):
                await b.publish("t1", "while-away", {"i": i})
        finally:
            await admin.aclose()
        seen = await collect(sub, 5)
        assert [e.seq for e in seen] == [2, 3, 4, 5, 6]
        await b.publish("t1", "after", {})
        assert [e.seq for e in await collect(sub, 1)] == [7]


async def test_a_redis_restarted_empty_ends_subscriptions_for_a_fresh_snapshot(
    private_redis: PrivateRedis,
) -> None:
    async with replica(private_redis.url, "p:") as a:
        sub = a.subscribe("t1")
        for i in range(3):
            await a.publish("t1", "tick", {"i": i})
        assert [e.seq for e in await collect(sub, 3)] == [1, 2, 3]
        private_redis.kill()
        private_redis.start()
        # Sequence numbers start again at 1: the client could not tell them from old ones,
        # so its subscription ends and it reconnects (and gets a snapshot).
        async with asyncio.timeout(10):
            await sub.overflowed.wait()
        assert sub.ended == "the event log restarted"
        fresh = a.subscribe("t1")
        event = None
        async with asyncio.timeout(10):
            while event is None:
                # The broker may still be reconnecting: publishing fails until it is back.
                with contextlib.suppress(Exception):
                    event = await a.publish("t1", "tick", {})
                await asyncio.sleep(0.1)
        assert event.seq == 1
        assert (await collect(fresh, 1))[0].seq == 1

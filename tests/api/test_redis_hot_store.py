"""The Redis hot store: the same answers as the in-process store for a scripted run of every
method, one atomic step per method under concurrency, and expiry that bounds Redis without
ever dropping a live worker or the reaper's retry queue."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from facefleet.api.storage.hot.base import HotStore, LiveWorker, SessionMismatch
from facefleet.api.storage.hot.memory import MemoryHotStore
from facefleet.api.storage.hot.redis import RedisHotStore
from facefleet.protocol.enums import WorkerStatus
from tests.fixtures.private_services import PrivateRedis
from tests.fixtures.services import REDIS_URL, create_redis_prefix, delete_redis_prefix

T0 = 1_800_000_000.0
TTL = 6.0


def live(worker_id: str, pk: int, tenant_id: str = "t1", **fields: Any) -> LiveWorker:
    values: dict[str, Any] = {
        "pk": pk,
        "tenant_id": tenant_id,
        "worker_id": worker_id,
        "session_hash": f"session-{worker_id}",
        "hostname": f"host-{worker_id}",
        "instance_id": f"instance-{worker_id}",
        "capacity": 2,
        "labels": ["gpu"],
        "status": WorkerStatus.online,
        "desired_state": "run",
        "last_seen": T0,
        "deadline": T0 + TTL,
    }
    values.update(fields)
    return LiveWorker(**values)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = create_redis_prefix()
    yield prefix
    delete_redis_prefix(prefix)


@pytest.fixture
async def store(redis_prefix: str) -> AsyncIterator[RedisHotStore]:
    hot = RedisHotStore.from_url(REDIS_URL, prefix=redis_prefix, record_ttl=60.0)
    yield hot
    await hot.close()


async def scripted_run(hot: HotStore) -> list[Any]:
    """Every method of the protocol, in an order that reaches each of its branches."""
    trace: list[Any] = []

    def note(label: str, value: Any) -> None:
        trace.append((label, value))

    note("put", await hot.put_worker(live("a", 1, leases={10: 1})))
    await hot.put_worker(live("b", 2))
    await hot.put_worker(live("c", 3, tenant_id="t2", labels=[]))
    note("put again", await hot.put_worker(live("a", 1, leases={10: 1})))
    note("restore existing", await hot.restore_worker(live("a", 1, session_hash="other")))
    note("restore new", await hot.restore_worker(live("d", 4)))
    note("get", await hot.get_worker("t1", "a"))
    note("get unknown", await hot.get_worker("t1", "nobody"))
    note("list t1", await hot.list_workers("t1"))
    note("list all", await hot.list_workers())

    note("command", await hot.add_command("t1", "a", {"id": 1, "type": "ping"}))
    note("command again", await hot.add_command("t1", "a", {"id": 1, "type": "ping"}))
    note("command 2", await hot.add_command("t1", "a", {"id": 2, "type": "reload"}))
    note("command unknown", await hot.add_command("t1", "nobody", {"id": 3, "type": "x"}))
    note("beat", await hot.heartbeat("t1", "a", now=T0 + 1, ttl=TTL, metrics={"fps": 4.5}))
    await hot.remove_command("t1", "a", 1)
    streams = [{"camera_id": 10, "epoch": 1, "state": "streaming", "fps": 5.0}]
    note(
        "beat again",
        await hot.heartbeat("t1", "a", now=T0 + 1.5, ttl=TTL, metrics=None, streams=streams),
    )
    note("delivered", await hot.take_delivered())
    note("delivered again", await hot.take_delivered())
    try:
        await hot.heartbeat("t1", "a", now=T0 + 2, ttl=TTL, metrics=None, session_hash="wrong")
    except SessionMismatch:
        note("mismatch", True)
    note(
        "beat session",
        await hot.heartbeat(
            "t1", "b", now=T0 + 2, ttl=TTL, metrics={"x": [1, 2]}, session_hash="session-b"
        ),
    )
    note("beat unknown", await hot.heartbeat("t1", "zz", now=T0 + 2, ttl=TTL, metrics=None))
    note("touched", await hot.take_touched())
    note("touched again", await hot.take_touched())
    note("dirty", sorted(await hot.take_dirty(), key=lambda d: d.pk))
    note("dirty again", await hot.take_dirty())
    note("rate", await hot.heartbeat_rate(now=T0 + 3))
    note("rate narrow", await hot.heartbeat_rate(now=T0 + 2.5, window=1.0))

    note("add", await hot.add_lease("t1", "b", 11, 3, now=T0 + 2))
    note("add 2", await hot.add_lease("t1", "b", 12, 4, now=T0 + 2))
    note("add again", await hot.add_lease("t1", "b", 12, 4, now=T0 + 2))
    note("drop", await hot.drop_lease("t1", "b", 12, now=T0 + 2))
    note("drop absent", await hot.drop_lease("t1", "b", 12, now=T0 + 2))
    note("add unknown", await hot.add_lease("t1", "nobody", 13, 1, now=T0 + 2))
    note("set", await hot.set_leases("t1", "b", {11: 3, 14: 2}, now=T0 + 2.1))
    note("set same", await hot.set_leases("t1", "b", {11: 3, 14: 2}, now=T0 + 2.2))
    note("set unknown", await hot.set_leases("t1", "nobody", {}, now=T0 + 2.2))
    note("commands set", await hot.set_commands("t1", "b", [{"id": 7, "type": "snapshot"}]))
    note("leases", (await hot.get_worker("t1", "b")))
    note("drain", await hot.set_status("t1", "b", WorkerStatus.draining, "drain"))
    note("draining", await hot.draining_with_leases())
    note(
        "stop",
        await hot.set_status(
            "t2", "c", WorkerStatus.stopping, "stop", stop_deadline=T0 + 3, stop_mode="graceful"
        ),
    )
    note("status unknown", await hot.set_status("t1", "nobody", WorkerStatus.online))

    note("sweep early", await hot.sweep(now=T0 + 2.5, suspect_after=4.0))
    note("sweep suspect", await hot.sweep(now=T0 + 4.5, suspect_after=4.0))
    note("recover", await hot.heartbeat("t1", "d", now=T0 + 4.6, ttl=TTL, metrics=None))
    note("sweep expire", await hot.sweep(now=T0 + 7.6, suspect_after=4.0))
    note("offline with leases", await hot.offline_with_leases())
    note("beat offline", await hot.heartbeat("t1", "a", now=T0 + 7.7, ttl=TTL, metrics=None))
    note("dirty after sweeps", sorted(await hot.take_dirty(), key=lambda d: d.pk))

    await hot.put_worker(live("e", 5, status=WorkerStatus.suspect, deadline=T0 + 20))
    note("grace", await hot.extend_grace(now=T0 + 7.8, ttl=TTL))
    note("graced", await hot.list_workers("t1"))
    await hot.put_worker(live("c", 3, tenant_id="t2", last_seen=T0 + 8, deadline=T0 + 14))
    await hot.remove_worker("t2", "c", only_if_offline=True)
    note("kept re-registered", await hot.get_worker("t2", "c"))
    await hot.drop_lease("t1", "a", 10, now=T0 + 8)
    await hot.remove_worker("t1", "a", only_if_offline=True)
    note("removed offline", await hot.get_worker("t1", "a"))
    await hot.remove_worker("t1", "d")
    note("list after removals", await hot.list_workers())
    # A bucket of 2 at 4 tokens a second: two at once, then one every quarter second.
    for step, at in enumerate([0.0, 0.0, 0.0, 0.1, 0.25, 0.26, 5.0, 5.0, 5.0, 4.0]):
        note(f"token {step}", await hot.take_token("7:general", rate=4.0, burst=2, now=T0 + at))
    note("other bucket", await hot.take_token("7:worker", rate=4.0, burst=2, now=T0))
    note("restored before", await hot.is_restored())
    await hot.mark_restored()
    note("restored after", await hot.is_restored())
    return trace


async def test_same_answers_as_the_in_process_store(store: RedisHotStore) -> None:
    expected = await scripted_run(MemoryHotStore())
    got = await scripted_run(store)
    for (label, want), (same_label, have) in zip(expected, got, strict=True):
        assert label == same_label
        assert have == want, label


async def test_commands_are_handed_out_until_acknowledged(store: RedisHotStore) -> None:
    await store.put_worker(live("w", 1))
    for i in range(20):
        await store.add_command("t1", "w", {"id": i})
    beats = [T0 + 1 + i / 100 for i in range(40)]
    outcomes = await asyncio.gather(
        *(
            store.heartbeat("t1", "w", now=now, ttl=TTL, metrics={"n": i})
            for i, now in enumerate(beats)
        )
    )
    # At least once: every heartbeat carries every command not yet acknowledged.
    for outcome in outcomes:
        assert outcome is not None and sorted(outcome.worker.commands) == list(range(20))
    assert await store.take_delivered() == list(range(20))
    for i in range(0, 20, 2):
        await store.remove_command("t1", "w", i)
    after = await store.heartbeat("t1", "w", now=T0 + 2, ttl=TTL, metrics=None)
    assert after is not None and sorted(after.worker.commands) == list(range(1, 20, 2))
    worker = await store.get_worker("t1", "w")
    assert worker is not None
    assert worker.deadline == T0 + 2 + TTL  # renewals never move the deadline back
    assert await store.heartbeat_rate(now=T0 + 3) == 41 / 10


async def test_every_lease_change_moves_the_generation_forward(store: RedisHotStore) -> None:
    first = await store.put_worker(live("w", 1))
    seen = [first]
    for i in range(5):
        seen.append(await store.add_lease("t1", "w", i, 1, now=T0) or 0)
    seen.append(await store.set_leases("t1", "w", {0: 2}, now=T0) or 0)
    seen.append(await store.drop_lease("t1", "w", 0, now=T0) or 0)
    # Registering again starts a record whose generation is newer still.
    seen.append(await store.put_worker(live("w", 1)))
    assert seen == sorted(set(seen)), seen
    assert await store.set_leases("t1", "w", {}, now=T0) == seen[-1]  # no change, no move


async def test_a_heartbeat_racing_the_sweep_is_either_renewed_or_refused(
    store: RedisHotStore,
) -> None:
    for round_ in range(30):
        worker_id = f"w{round_}"
        await store.put_worker(live(worker_id, round_ + 1, deadline=T0 + 1))
        beat, swept = await asyncio.gather(
            store.heartbeat("t1", worker_id, now=T0 + 1, ttl=TTL, metrics=None),
            store.sweep(now=T0 + 1, suspect_after=100.0),
        )
        expired = [w.worker_id for w in swept.expired]
        # The sweep ran first (offline, the late beat is refused) or the beat did (renewed,
        # nothing to expire): never a renewed worker that is also declared offline.
        assert (beat is None) == (worker_id in expired), (beat, expired)
        await store.remove_worker("t1", worker_id)


async def test_a_mismatched_session_renews_nothing(store: RedisHotStore) -> None:
    await store.put_worker(live("w", 1))
    await store.add_command("t1", "w", {"id": 1})
    with pytest.raises(SessionMismatch):
        await store.heartbeat("t1", "w", now=T0 + 3, ttl=TTL, metrics={}, session_hash="x")
    worker = await store.get_worker("t1", "w")
    assert worker is not None and worker.last_seen == T0 and worker.deadline == T0 + TTL
    assert await store.take_dirty() == []
    outcome = await store.heartbeat(
        "t1", "w", now=T0 + 3, ttl=TTL, metrics={}, session_hash="session-w"
    )
    assert outcome is not None and outcome.worker.commands == {1: {"id": 1}}


async def test_restore_never_overwrites_a_registration(store: RedisHotStore) -> None:
    fresh = live("w", 1, session_hash="new")
    fresh.generation = await store.put_worker(fresh)
    results = await asyncio.gather(
        *(store.restore_worker(live("w", 1, session_hash="old")) for _ in range(10))
    )
    assert results == [False] * 10
    assert await store.get_worker("t1", "w") == fresh


async def ttls(store: RedisHotStore) -> dict[str, float]:
    """Seconds to live of every key under the store's prefix (-1: no expiry)."""
    out: dict[str, float] = {}
    async for key in store.client.scan_iter(match=f"{store.prefix}*"):
        ms = await store.client.pttl(key)
        out[key.removeprefix(store.prefix)] = ms / 1000 if ms >= 0 else -1
    return out


async def test_every_key_expires_except_indexes_and_the_reapers_retry_queue(
    store: RedisHotStore,
) -> None:
    await store.put_worker(live("a", 1, leases={10: 1}))
    await store.put_worker(live("b", 2))
    await store.add_command("t1", "b", {"id": 1})
    await store.heartbeat("t1", "a", now=T0 + 1, ttl=TTL, metrics={"fps": 1.0})
    await store.heartbeat("t1", "b", now=T0 + 1, ttl=TTL, metrics=None)
    await store.mark_restored()
    keys = await ttls(store)
    for key in ("w:t1/a", "w:t1/b", "cmd:t1/b", "delivered", "dirty", "touched", "touched:t1"):
        assert 50 < keys[key] <= 60, (key, keys[key])
    assert 100 < keys[f"rate:{int(T0 + 1)}"] <= 120
    # A rate-limit bucket is kept only until it would be full again.
    await store.take_token("1:general", rate=10.0, burst=20, now=T0)
    assert 0 < (await ttls(store))["bucket:1:general"] <= 1.1
    # Index sets lose members whose record expired at the next sweep or listing; the marker
    # says the store holds the database's state.
    assert keys["idx:t1"] == keys["tenants"] == keys["restored"] == -1

    # Declared offline while holding a lease: the reaper's retry queue, which must outlive
    # any database outage, so it never expires...
    await store.sweep(now=T0 + 100, suspect_after=4.0)
    keys = await ttls(store)
    assert keys["w:t1/a"] == -1
    assert 50 < keys["w:t1/b"] <= 60  # offline without leases: expires
    # ... until the database released the lease.
    await store.drop_lease("t1", "a", 10, now=T0 + 100)
    assert 50 < (await ttls(store))["w:t1/a"] <= 60


async def test_an_abandoned_record_expires_and_leaves_the_indexes(redis_prefix: str) -> None:
    hot = RedisHotStore.from_url(REDIS_URL, prefix=redis_prefix, record_ttl=0.3)
    try:
        await hot.put_worker(live("gone", 1))
        await hot.put_worker(live("kept", 2))
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            # A worker that heartbeats renews its record on every beat: it never expires.
            assert await hot.heartbeat("t1", "kept", now=T0 + 1, ttl=TTL, metrics=None)
            await asyncio.sleep(0.1)
        assert await hot.get_worker("t1", "gone") is None
        assert [w.worker_id for w in await hot.list_workers()] == ["kept"]
        assert await hot.client.smembers(f"{redis_prefix}idx:t1") == {"kept"}
    finally:
        await hot.close()


async def test_keys_stay_under_the_prefix(tmp_path: Path) -> None:
    private = PrivateRedis(tmp_path / "redis")
    private.start()
    hot = RedisHotStore.from_url(private.url, prefix="deployment-a:")
    try:
        await scripted_run(hot)
        keys = [key async for key in hot.client.scan_iter(match="*")]
        assert keys and all(key.startswith("deployment-a:") for key in keys), keys
    finally:
        await hot.close()
        private.stop()


def test_records_round_trip_exactly() -> None:
    from facefleet.api.storage.hot.redis import decode_worker, encode_worker

    worker = live(
        "w",
        7,
        last_seen=T0 + 0.1,
        deadline=T0 + 0.1 + TTL,
        leases={3: 9, 12: 1},
        metrics={"fps": 0.3, "nested": {"a": [1, None]}},
        stop_deadline=T0 + 1 / 3,
        stop_mode="immediate",
    )
    assert decode_worker(encode_worker(worker)) == worker
    bare = dataclasses.replace(worker, stop_deadline=None, stop_mode=None, leases={})
    assert decode_worker(encode_worker(bare)) == bare

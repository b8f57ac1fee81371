"""One clock judges every lease: never the wall clock of the replica that answers."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

from facefleet.api.clock import MonotonicClock, RedisClock
from tests.fixtures.services import REDIS_URL, create_redis_prefix


def test_a_step_of_the_wall_clock_does_not_move_the_in_process_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = MonotonicClock()
    before = clock()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 5.0)  # the wall clock steps by 5 s
    assert abs(clock() - before) < 0.5


@pytest.fixture
def redis_url() -> str:
    create_redis_prefix()  # skips (or fails in CI) without Redis
    return REDIS_URL


async def test_replicas_read_redis_time_and_not_their_own(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        real = time.time
        # This replica's wall clock is 5 s ahead of everyone else's.
        monkeypatch.setattr(time, "time", lambda: real() + 5.0)
        clock = RedisClock(client.time)
        assert await clock.calibrate()
        seconds, micros = await client.time()
        assert abs(clock() - (seconds + micros / 1e6)) < 0.05
        assert abs(clock() - real()) < 0.05  # Redis runs on this machine's true clock
    finally:
        await client.aclose()

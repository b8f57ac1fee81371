"""The sighting outbox against a scripted API: durable batches in order, retries, restarts
and stale epochs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from facefleet.worker.local_store import LocalStore
from facefleet.worker.pipeline.reporter import SightingOutbox
from facefleet.worker.worker_client import (
    ApiError,
    ConnectionFailed,
    Sighting,
    SightingsAccepted,
    StaleEpoch,
)
from tests.fixtures.waiting import until

CAMERA, EPOCH = 5, 3


def sighting(track: str, frames: int = 1, person: int | None = 1) -> Sighting:
    return Sighting(
        track_id=track,
        person_id=person,
        first_seen=1000.0,
        last_seen=1000.0 + frames,
        best_distance=0.4 if person is not None else None,
        frames=frames,
    )


@dataclass
class FakeApi:
    """Answers each call with the next scripted outcome: an exception to raise, or success."""

    script: list[Exception | None] = field(default_factory=list)
    calls: list[tuple[int, int, list[Sighting]]] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def report_sightings(
        self, camera_id: int, epoch: int, sightings: Sequence[Sighting]
    ) -> SightingsAccepted:
        self.calls.append((camera_id, epoch, list(sightings)))
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return SightingsAccepted(accepted=len(sightings), ids=list(range(len(sightings))))

    def sent(self) -> list[list[str]]:
        return [[s.track_id for s in batch] for _, _, batch in self.calls]


@dataclass
class StaleCalls:
    seen: list[tuple[int, int]] = field(default_factory=list)

    def __call__(self, camera_id: int, epoch: int) -> None:
        self.seen.append((camera_id, epoch))


def stale_epoch() -> StaleEpoch:
    return StaleEpoch(409, "StaleEpoch", "camera 5 is not yours at epoch 3: stop processing it")


async def eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    await until(check, within, "the outbox")


def outbox(api: FakeApi, stale: StaleCalls | None = None, **options: float) -> SightingOutbox:
    return SightingOutbox(LocalStore(":memory:"), api, stale, **options)  # type: ignore[arg-type]


async def running(box: SightingOutbox) -> asyncio.Task[None]:
    return asyncio.create_task(box.run())


async def test_a_batch_carries_the_camera_and_epoch_and_the_latest_of_each_track() -> None:
    api = FakeApi()
    box = outbox(api)
    box.submit(CAMERA, EPOCH, sighting("t1", frames=1))
    box.submit(CAMERA, EPOCH, sighting("t2"))
    box.submit(CAMERA, EPOCH, sighting("t1", frames=7))  # replaces the waiting t1, goes last
    assert await box.flush()
    [(camera, epoch, batch)] = api.calls
    assert (camera, epoch) == (CAMERA, EPOCH)
    assert [(s.track_id, s.frames) for s in batch] == [("t2", 1), ("t1", 7)]
    assert box.accepted[CAMERA, EPOCH] == 2 and box.store.waiting() == 0


async def test_batches_keep_to_one_camera_and_epoch_in_order_and_to_max_batch() -> None:
    api = FakeApi()
    box = outbox(api, max_batch=2)
    box.submit(CAMERA, EPOCH, sighting("a"))
    box.submit(CAMERA, EPOCH, sighting("b"))
    box.submit(CAMERA, EPOCH, sighting("c"))
    box.submit(9, 1, sighting("x"))
    box.submit(CAMERA, EPOCH + 1, sighting("d"))
    assert await box.flush()
    assert [(c, e, [s.track_id for s in b]) for c, e, b in api.calls] == [
        (CAMERA, EPOCH, ["a", "b"]),
        (CAMERA, EPOCH, ["c"]),
        (9, 1, ["x"]),
        (CAMERA, EPOCH + 1, ["d"]),
    ]


async def test_the_background_loop_sends_what_is_submitted() -> None:
    api = FakeApi()
    box = outbox(api, flush_interval=60)
    task = await running(box)
    try:
        box.submit(CAMERA, EPOCH, sighting("t1"))
        await eventually(lambda: api.sent() == [["t1"]])
    finally:
        task.cancel()


async def test_connection_errors_keep_the_sightings_and_retry_in_order() -> None:
    failure = ConnectionFailed("control plane unreachable")
    api = FakeApi(script=[failure, failure])
    box = outbox(api, retry_initial=0.01, retry_max=0.02)
    task = await running(box)
    try:
        box.submit(CAMERA, EPOCH, sighting("t1"))
        box.submit(CAMERA, EPOCH, sighting("t2"))
        await eventually(lambda: box.accepted[CAMERA, EPOCH] == 2)
        assert api.sent() == [["t1", "t2"]] * 3 and box.failures == 2
    finally:
        task.cancel()


async def test_server_errors_are_retried_too() -> None:
    api = FakeApi(script=[ApiError(500, "HTTPError", "boom")])
    box = outbox(api)
    box.submit(CAMERA, EPOCH, sighting("t1"))
    assert not await box.flush()
    assert box.store.waiting() == 1 and "boom" in box.last_error
    assert await box.flush()
    assert box.accepted[CAMERA, EPOCH] == 1


async def test_a_stale_epoch_drops_that_epoch_only_and_asks_to_stop_its_stream() -> None:
    stale = StaleCalls()
    api = FakeApi(script=[stale_epoch()])
    box = outbox(api, stale)
    box.submit(CAMERA, EPOCH, sighting("old-1"))
    box.submit(CAMERA, EPOCH, sighting("old-2"))
    box.submit(CAMERA, EPOCH + 1, sighting("new"))
    assert await box.flush()
    assert stale.seen == [(CAMERA, EPOCH)]
    assert box.dropped[CAMERA, EPOCH] == 2
    assert api.sent() == [["old-1", "old-2"], ["new"]]  # the newer epoch still goes out
    box.submit(CAMERA, EPOCH, sighting("late"))  # nothing more is queued for a stale epoch
    assert box.store.waiting() == 0 and box.dropped[CAMERA, EPOCH] == 3


async def test_a_refused_batch_is_dropped_not_retried() -> None:
    api = FakeApi(script=[ApiError(422, "ValidationError", "bad")])
    box = outbox(api)
    box.submit(CAMERA, EPOCH, sighting("t1"))
    assert await box.flush()
    assert box.dropped[CAMERA, EPOCH] == 1 and box.store.waiting() == 0


async def test_an_update_arriving_during_a_post_is_sent_next() -> None:
    api = FakeApi(gate=asyncio.Event())
    box = outbox(api)
    flushing = asyncio.create_task(box.flush())
    box.submit(CAMERA, EPOCH, sighting("t1", frames=1))
    await eventually(lambda: len(api.calls) == 1)
    box.submit(CAMERA, EPOCH, sighting("t1", frames=9))  # while the first post is out
    assert api.gate is not None
    api.gate.set()
    assert await flushing
    assert [[s.frames for s in batch] for _, _, batch in api.calls] == [[1], [9]]


async def test_what_waits_survives_a_restart_of_the_worker(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    down = FakeApi(script=[ConnectionFailed("away")])
    first = SightingOutbox(LocalStore(path), down)
    first.submit(CAMERA, EPOCH, sighting("t1"))
    first.submit(CAMERA, EPOCH, sighting("t2"))
    assert not await first.flush()
    first.store.close()  # the process dies; a new one opens the same state directory
    api = FakeApi()
    second = SightingOutbox(LocalStore(path), api)
    assert second.store.waiting() == 2
    assert await second.flush()
    assert api.sent() == [["t1", "t2"]]


async def test_a_reporter_closing_waits_briefly_for_its_sightings() -> None:
    api = FakeApi()
    box = outbox(api, flush_interval=60)
    task = await running(box)
    try:
        reporter = box.reporter(CAMERA, EPOCH)
        reporter.submit(sighting("t1"))
        await reporter.aclose(2.0)
        assert reporter.pending == 0 and reporter.accepted == 1
    finally:
        task.cancel()


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        outbox(FakeApi(), max_batch=0)

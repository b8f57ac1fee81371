"""The sighting reporter against a scripted API: batching, retries, bounds and stale epochs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from facefleet.worker.pipeline.reporter import SightingReporter
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
    await until(check, within, "the reporter")


async def test_a_batch_carries_the_camera_and_epoch_and_the_latest_of_each_track() -> None:
    api = FakeApi()
    reporter = SightingReporter(api, CAMERA, EPOCH, StaleCalls(), flush_interval=60)
    reporter.submit(sighting("t-1", frames=1))
    reporter.submit(sighting("t-2"))
    reporter.submit(sighting("t-1", frames=4))  # an update replaces the waiting report
    assert reporter.pending == 2
    assert await reporter.flush()
    [(camera_id, epoch, batch)] = api.calls
    assert (camera_id, epoch) == (CAMERA, EPOCH)
    assert [(s.track_id, s.frames) for s in batch] == [("t-2", 1), ("t-1", 4)]
    assert (reporter.accepted, reporter.pending) == (2, 0)
    await reporter.aclose()


async def test_large_backlogs_go_in_batches_of_max_batch() -> None:
    api = FakeApi()
    reporter = SightingReporter(api, CAMERA, EPOCH, StaleCalls(), flush_interval=60, max_batch=3)
    for i in range(7):
        reporter.submit(sighting(f"t-{i}"))
    assert await reporter.flush()
    assert [len(batch) for batch in api.sent()] == [3, 3, 1]
    assert reporter.accepted == 7
    await reporter.aclose()


async def test_the_background_loop_posts_after_the_flush_interval() -> None:
    api = FakeApi()
    reporter = SightingReporter(api, CAMERA, EPOCH, StaleCalls(), flush_interval=0.05)
    reporter.submit(sighting("t-1"))
    await eventually(lambda: reporter.accepted == 1)
    await reporter.aclose()


async def test_a_full_batch_is_posted_without_waiting_for_the_interval() -> None:
    api = FakeApi()
    reporter = SightingReporter(api, CAMERA, EPOCH, StaleCalls(), flush_interval=60, max_batch=2)
    reporter.submit(sighting("t-1"))
    reporter.submit(sighting("t-2"))
    await eventually(lambda: reporter.accepted == 2, within=1.0)
    await reporter.aclose()


async def test_stale_epoch_drops_everything_and_asks_to_stop_the_stream() -> None:
    api = FakeApi(script=[stale_epoch()])
    stale = StaleCalls()
    reporter = SightingReporter(api, CAMERA, EPOCH, stale, flush_interval=0.01)
    reporter.submit(sighting("t-1"))
    reporter.submit(sighting("t-2"))
    await eventually(lambda: reporter.stale)
    assert stale.seen == [(CAMERA, EPOCH)]
    assert (reporter.pending, reporter.dropped, reporter.accepted) == (0, 2, 0)
    reporter.submit(sighting("t-3"))  # nothing more is sent for this epoch
    await asyncio.sleep(0.05)
    await reporter.aclose()
    assert len(api.calls) == 1 and reporter.dropped == 3
    assert stale.seen == [(CAMERA, EPOCH)]


async def test_connection_errors_keep_the_batch_and_retry() -> None:
    down = ConnectionFailed("control plane unreachable")
    api = FakeApi(script=[down, down])
    reporter = SightingReporter(
        api, CAMERA, EPOCH, StaleCalls(), flush_interval=0.01, retry_initial=0.01
    )
    reporter.submit(sighting("t-1"))
    await eventually(lambda: reporter.accepted == 1)
    assert api.sent() == [["t-1"]] * 3
    assert (reporter.failures, reporter.dropped) == (2, 0)
    await reporter.aclose()


async def test_server_errors_are_retried_too() -> None:
    api = FakeApi(script=[ApiError(500, "InternalError", "boom")])
    reporter = SightingReporter(
        api, CAMERA, EPOCH, StaleCalls(), flush_interval=0.01, retry_initial=0.01
    )
    reporter.submit(sighting("t-1"))
    await eventually(lambda: reporter.accepted == 1)
    await reporter.aclose()


async def test_the_backlog_is_bounded_while_the_control_plane_is_away() -> None:
    api = FakeApi(script=[ConnectionFailed("down")] * 100)
    reporter = SightingReporter(
        api, CAMERA, EPOCH, StaleCalls(), flush_interval=60, max_batch=2, max_pending=3
    )
    for i in range(5):
        reporter.submit(sighting(f"t-{i}"))
    assert (reporter.pending, reporter.dropped) == (3, 2)
    assert not await reporter.flush()
    assert api.sent()[-1] == ["t-2", "t-3"]  # the oldest were dropped
    await reporter.aclose(timeout=0.1)
    assert reporter.pending == 0


async def test_a_refused_batch_is_dropped_not_retried() -> None:
    api = FakeApi(script=[ApiError(422, "ValidationError", "bad sighting")])
    reporter = SightingReporter(api, CAMERA, EPOCH, StaleCalls(), flush_interval=60)
    reporter.submit(sighting("t-1"))
    assert await reporter.flush()
    assert (reporter.dropped, reporter.accepted, len(api.calls)) == (1, 0, 1)
    await reporter.aclose()


async def test_an_update_arriving_during_a_post_is_sent_next() -> None:
    api = FakeApi(gate=asyncio.Event())
    reporter = SightingReporter(api, CAMERA, EPOCH, StaleCalls(), flush_interval=60)
    reporter.submit(sighting("t-1", frames=1))
    posting = asyncio.create_task(reporter.flush())
    await eventually(lambda: len(api.calls) == 1)
    reporter.submit(sighting("t-1", frames=9))
    assert api.gate is not None
    api.gate.set()
    assert await posting
    assert [[s.frames for s in batch] for _, _, batch in api.calls] == [[1], [9]]


async def test_closing_sends_what_is_left() -> None:
    api = FakeApi()
    reporter = SightingReporter(api, CAMERA, EPOCH, StaleCalls(), flush_interval=60)
    reporter.submit(sighting("t-1", person=None))
    await reporter.aclose()
    assert api.sent() == [["t-1"]] and reporter.accepted == 1
    reporter.submit(sighting("t-2"))
    assert reporter.dropped == 1


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        SightingReporter(FakeApi(), CAMERA, EPOCH, StaleCalls(), max_batch=501)
    with pytest.raises(ValueError):
        SightingReporter(FakeApi(), CAMERA, EPOCH, StaleCalls(), max_batch=10, max_pending=5)

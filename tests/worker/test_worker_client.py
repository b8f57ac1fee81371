"""The worker SDK over real HTTP: against the real control plane (uvicorn on loopback, SQLite)
and, for retry behaviour, against a scripted stand-in for a failing proxy or server."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable
from typing import Any

import pytest

from facefleet.api.security import Role
from facefleet.worker.worker_client import (
    ApiError,
    ConnectionFailed,
    Forbidden,
    HeartbeatResult,
    StaleEpoch,
    Unauthorized,
    WorkerClient,
    WorkerIdInUse,
    WorkerNotFound,
)
from tests.fixtures.loopback import FAST_RETRY, ControlPlane
from tests.fixtures.scripted_server import HEARTBEAT, REGISTERED, UNAVAILABLE, scripted


async def test_round_trip(cp: ControlPlane) -> None:
    camera_id = await cp.add_camera()
    async with cp.client(hostname="edge-7", version="1.2.3", capacity=2, labels=["gpu"]) as w:
        reg = await w.register()
        assert (reg.worker_id, reg.status, reg.desired_state) == ("w1", "online", "run")
        assert reg.lease_ttl == cp.lease_ttl and reg.leases == []
        assert w.session_token == reg.session_token
        assert reg.session_token not in repr(reg)

        beat = await w.heartbeat({"fps": 12.5, "stream": {"state": "idle"}})
        assert (beat.status, beat.desired_state, beat.leases) == ("online", "run", [])

        got = await w.request_camera()
        assert got.assignment is not None
        assignment = got.assignment
        assert (assignment.camera_id, assignment.epoch) == (camera_id, 1)
        assert assignment.source_url == "rtsp://user:pw@10.0.0.1/s"
        assert "pw@" not in repr(assignment)

        current = await w.current_cameras()
        assert [a.camera_id for a in current.assignments] == [camera_id]
        beat = await w.heartbeat()
        assert [(lease.camera_id, lease.epoch, lease.valid) for lease in beat.leases] == [
            (camera_id, 1, True)
        ]

        released = await w.release_camera(camera_id, 1)
        assert (released.released, released.camera_id, released.epoch) == (True, camera_id, 1)
        assert (await w.current_cameras()).assignments == []
        again = await w.request_camera()
        assert again.assignment is not None  # the same camera again, at a new epoch
        assert again.assignment.epoch == 2

        gone = await w.deregister()
        assert (gone.worker_id, gone.released_cameras) == ("w1", [camera_id])
        assert w.session_token is None

    seen = await cp.worker("w1")
    assert (seen["status"], seen["hostname"], seen["version"]) == (
        "deregistered",
        "edge-7",
        "1.2.3",
    )
    assert (seen["capacity"], seen["labels"]) == (2, ["gpu"])


async def test_no_free_camera_is_an_answer_not_an_error(cp: ControlPlane) -> None:
    async with cp.client() as w:
        await w.register()
        got = await w.request_camera()
        assert got.assignment is None
        assert got.retry_after is not None and got.retry_after > 0
        assert got.reason


async def test_release_at_a_stale_epoch(cp: ControlPlane) -> None:
    camera_id = await cp.add_camera()
    async with cp.client() as w:
        await w.register()
        got = await w.request_camera()
        assert got.assignment is not None

        with pytest.raises(StaleEpoch) as caught:
            await w.release_camera(camera_id, got.assignment.epoch + 1)
        assert (caught.value.status, caught.value.error) == (409, "StaleEpoch")
        assert "stop processing it" in caught.value.detail
        assert caught.value.body["camera_id"] == camera_id

        await w.release_camera(camera_id, got.assignment.epoch)
        with pytest.raises(StaleEpoch):
            await w.release_camera(camera_id, got.assignment.epoch)


async def test_reregisters_after_being_declared_offline(cp: ControlPlane) -> None:
    camera_id = await cp.add_camera()
    async with cp.client(instance_id="proc-1") as w:
        await w.register()
        await w.request_camera()
        old_token = w.session_token

        changes = await cp.expire_leases()
        assert [(c["worker_id"], c["to_status"], c["released_cameras"]) for c in changes] == [
            ("w1", "offline", [camera_id])
        ]

        beat = await w.heartbeat({"fps": 1.0})
        assert (beat.status, beat.leases) == ("online", [])  # its camera was taken back
        assert w.session_token not in (None, old_token)
        assert w.instance_id == "proc-1"
        assert (await cp.history("w1"))[-1] == "re-registered"

        again = await w.request_camera()
        assert again.assignment is not None and again.assignment.epoch == 2


async def test_concurrent_calls_reregister_once(cp: ControlPlane) -> None:
    async with cp.client() as w:
        await w.register()
        await cp.expire_leases()
        beat, current = await asyncio.gather(w.heartbeat(), w.current_cameras())
        assert beat.status == "online" and current.assignments == []
        assert (await cp.history("w1")).count("re-registered") == 1


async def test_reregisters_after_an_admin_deregistered_it(cp: ControlPlane) -> None:
    await cp.add_camera()
    async with cp.client() as w:
        await w.register()
        assert (await cp.admin.delete("/v1/workers/w1")).status_code == 200
        got = await w.request_camera()
        assert got.assignment is not None
        assert (await cp.worker("w1"))["status"] == "online"


async def test_deregister_does_not_reregister(cp: ControlPlane) -> None:
    async with cp.client() as w:
        await w.register()
        await cp.admin.delete("/v1/workers/w1")
        with pytest.raises(WorkerNotFound) as caught:
            await w.deregister()
        assert caught.value.status == 404 and "register again" in caught.value.detail
        assert (await cp.worker("w1"))["status"] == "deregistered"


async def test_second_process_with_the_same_worker_id_is_refused(cp: ControlPlane) -> None:
    async with cp.client(instance_id="first") as first, cp.client(instance_id="second") as second:
        await first.register()
        with pytest.raises(WorkerIdInUse) as caught:
            await second.register()
        err = caught.value
        assert (err.status, err.error) == (409, "WorkerIdInUse")
        assert "held by a live process" in err.detail
        assert err.retry_after is not None and err.retry_after > 0
        assert (await first.heartbeat()).status == "online"
        # Its holder registering again (it sends its session) is no collision.
        await first.register()
        assert (await first.heartbeat()).status == "online"


async def test_a_restarted_process_comes_back_once_its_old_session_is_stale(
    cp: ControlPlane,
) -> None:
    camera_id = await cp.add_camera()
    async with cp.client(instance_id="first") as first:
        await first.register()
        await first.request_camera()
    # The process died: a new one (same WORKER_ID, even the same instance_id) has no
    # session to show, so it waits until the old one has been silent for a while.
    async with cp.client(instance_id="first") as restarted:
        with pytest.raises(WorkerIdInUse) as caught:
            await restarted.register()
        assert caught.value.retry_after is not None
        cp.clock.advance(caught.value.retry_after)
        reg = await restarted.register()
        # Before its lease ran out: it keeps its camera.
        assert [(le.camera_id, le.valid) for le in reg.leases] == [(camera_id, True)]


async def test_bad_key_and_wrong_role(cp: ControlPlane) -> None:
    async with WorkerClient(cp.url, "ff_worker_nope", "w1", retry=FAST_RETRY) as w:
        with pytest.raises(Unauthorized) as caught:
            await w.register()
        assert caught.value.status == 401 and "API key" in caught.value.detail
    async with cp.client(role=Role.viewer) as viewer:
        with pytest.raises(Forbidden) as forbidden:
            await viewer.register()
        assert forbidden.value.status == 403


async def test_a_taken_over_session_is_forbidden_not_reregistered(cp: ControlPlane) -> None:
    async with cp.client(instance_id="a") as old, cp.client(instance_id="b") as new:
        await old.register()
        cp.clock.advance(cp.lease_ttl + 1)  # stale: another process may take the id over
        await new.register()
        with pytest.raises(Forbidden):
            await old.heartbeat()
        assert (await new.heartbeat()).status == "online"


async def test_503_twice_then_success_honours_retry_after() -> None:
    wait = {"Retry-After": "0.2"}
    async with scripted(
        (503, UNAVAILABLE, wait), (503, UNAVAILABLE, wait), (200, REGISTERED, {})
    ) as (script, make):
        client = make()
        elapsed = await timed(client.register())
        assert client.session_token == "tok-1"
        assert [s.path for s in script.seen] == ["/v1/workers/register"] * 3
        assert elapsed >= 0.4  # backoff alone would be under 0.05 s


async def test_429_is_retried_and_later_calls_carry_the_session() -> None:
    async with scripted(
        (200, REGISTERED, {}),
        (429, {"error": "TooManyRequests"}, {"Retry-After": "0.1"}),
        (200, HEARTBEAT, {}),
    ) as (script, make):
        client = make()
        await client.register()
        beat = await client.heartbeat({"fps": 3})
        assert beat.desired_state == "drain" and beat.commands[0].id == 7
        register, *beats = script.seen
        assert register.headers["authorization"] == "Bearer ff_worker_key"
        assert "x-worker-session" not in register.headers
        assert [(s.path, s.headers["x-worker-session"], s.body) for s in beats] == [
            ("/v1/workers/w1/heartbeat", "tok-1", {"metrics": {"fps": 3}})
        ] * 2


async def test_retries_are_bounded_by_attempts() -> None:
    async with scripted(*[(503, UNAVAILABLE, {})] * 4) as (script, make):
        client = make()
        with pytest.raises(ApiError) as caught:
            await client.register()
        assert (caught.value.status, caught.value.error) == (503, "ServiceUnavailable")
        assert len(script.seen) == FAST_RETRY.max_attempts


async def test_retry_after_beyond_the_time_budget_is_not_waited_for() -> None:
    async with scripted((503, UNAVAILABLE, {"Retry-After": "60"})) as (script, make):
        client = make()
        with pytest.raises(ApiError) as caught:
            await client.register()
        assert caught.value.retry_after == 60.0
        assert len(script.seen) == 1


async def test_timeouts_are_retried() -> None:
    async with scripted((200, REGISTERED, {}), (200, REGISTERED, {}), delays=(0.5,)) as (
        script,
        make,
    ):
        client = make(timeout=0.2)
        await client.register()
        assert len(script.seen) == 2


async def test_unreachable_server_raises_connection_failed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with WorkerClient(f"http://127.0.0.1:{port}", "k", "w1", retry=FAST_RETRY) as client:
        with pytest.raises(ConnectionFailed, match="unreachable"):
            await client.register()


async def test_worker_not_found_from_the_scripted_server_reregisters() -> None:
    missing = {"error": "WorkerNotFound", "detail": "register again"}
    again = {**REGISTERED, "session_token": "tok-2"}
    async with scripted(
        (200, REGISTERED, {}), (404, missing, {}), (200, again, {}), (200, HEARTBEAT, {})
    ) as (script, make):
        client = make(instance_id="proc-9")
        await client.register()
        await client.heartbeat()
        paths = [s.path.rsplit("/", 1)[-1] for s in script.seen]
        assert paths == ["register", "heartbeat", "register", "heartbeat"]
        assert script.seen[2].body["instance_id"] == "proc-9"
        assert script.seen[3].headers["x-worker-session"] == "tok-2"


async def test_a_plain_404_is_not_worker_not_found() -> None:
    async with scripted(
        (200, REGISTERED, {}), (404, {"error": "NotFound", "detail": "Not Found"}, {})
    ) as (script, make):
        client = make()
        await client.register()
        with pytest.raises(ApiError) as caught:
            await client.signal_shutdown("SIGTERM")
        assert (caught.value.status, caught.value.error) == (404, "NotFound")
        assert len(script.seen) == 2


async def test_shutdown_signal_and_command_ack_requests() -> None:
    async with scripted(
        (200, REGISTERED, {}), (202, {"accepted": True}, {}), (200, {}, {}), (200, {}, {})
    ) as (script, make):
        client = make()
        await client.register()
        assert await client.signal_shutdown("SIGTERM") == {"accepted": True}
        assert await client.ack_command(7, "acked", {"reloaded": 3}) == {}
        assert await client.ack_command(8, "failed") == {}
        calls = [(s.method, s.path, s.body) for s in script.seen[1:]]
        assert calls == [
            ("POST", "/v1/workers/w1/shutdown/signal", {"reason": "SIGTERM", "source": "worker"}),
            (
                "POST",
                "/v1/workers/w1/commands/7/ack",
                {"status": "acked", "result": {"reloaded": 3}},
            ),
            ("POST", "/v1/workers/w1/commands/8/ack", {"status": "failed", "result": {}}),
        ]
        assert all(s.headers["x-worker-session"] == "tok-1" for s in script.seen[1:])


def test_heartbeat_result_reads_the_earlier_pending_field() -> None:
    earlier = {**HEARTBEAT, "pending": HEARTBEAT["commands"]}
    del earlier["commands"]
    commands = HeartbeatResult.model_validate(earlier).commands
    assert [c.model_dump(exclude_unset=True) for c in commands] == HEARTBEAT["commands"]


async def test_non_json_error_from_a_proxy() -> None:
    async with scripted((502, "bad gateway", {})) as (_, make):
        client = make()
        with pytest.raises(ApiError) as caught:
            await client.register()
        assert (caught.value.status, caught.value.error) == (502, "Bad Gateway")
        assert caught.value.detail == "bad gateway"


async def timed(call: Awaitable[Any]) -> float:
    start = time.monotonic()
    await call
    return time.monotonic() - start


async def test_a_metric_no_json_reader_takes_does_not_cost_the_heartbeat(cp: ControlPlane) -> None:
    """The control plane refuses NaN and lone surrogates (422); the client sends them as null
    and U+FFFD, so a bad sample never loses a heartbeat."""
    async with cp.client() as w:
        await w.register()
        beat = await w.heartbeat({"cpu_percent": float("nan"), "note": "bad\ud800", "ok": 1})
        assert beat.status == "online"
    seen = await cp.worker("w1")
    assert seen["metrics"] == {"cpu_percent": None, "note": "bad\ufffd", "ok": 1}

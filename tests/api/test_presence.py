"""The presence channel over a real server: a worker whose stream breaks off (its process
died: its kernel closed the socket) loses its cameras a presence grace later, at once and not
at the next reaper period or after the lease TTL; one that reconnects within the grace keeps
them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from facefleet.api.app import create_app
from facefleet.api.security import Role
from tests.fixtures.harness import Tenant, make_settings
from tests.fixtures.live_server import LiveServer, live_server

GRACE = 1.0
# Far longer than the test: a release in time came from the presence alarm.
REAPER_PERIOD = 30.0
LEASE_TTL = 60.0


def presence_server(
    tmp_path: Path, database_url: str, hot_settings: dict[str, Any], grace: float, beat: float
) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path,
        database_url,
        run_background=True,
        reaper_period=REAPER_PERIOD,
        lease_ttl=LEASE_TTL,
        presence_grace=grace,
        presence_beat=beat,
        **hot_settings,
    )
    with live_server(create_app(settings)) as running:
        yield running


@pytest.fixture
def server(database_url: str, hot_settings: dict[str, Any], tmp_path: Path) -> Iterator[LiveServer]:
    yield from presence_server(tmp_path, database_url, hot_settings, GRACE, beat=0.2)


SLOW_BEAT = 2.0
SLOW_BEAT_GRACE = 2 * SLOW_BEAT + 0.5  # the least the settings allow


@pytest.fixture
def slow_beat_server(
    database_url: str, hot_settings: dict[str, Any], tmp_path: Path
) -> Iterator[LiveServer]:
    yield from presence_server(tmp_path, database_url, hot_settings, SLOW_BEAT_GRACE, SLOW_BEAT)


async def worker_with_camera(http: httpx.AsyncClient, tenant: Tenant) -> tuple[str, dict[str, str]]:
    camera = await http.post(
        "/v1/cameras",
        json={"name": "door", "source_url": "rtsp://10.0.0.1/s"},
        headers=tenant.headers(Role.admin),
    )
    assert camera.status_code == 201, camera.text
    reg = await http.post(
        "/v1/workers/register",
        json={"worker_id": "w1", "instance_id": uuid.uuid4().hex},
        headers=tenant.headers(Role.worker),
    )
    assert reg.status_code == 200, reg.text
    headers = {**tenant.headers(Role.worker), "X-Worker-Session": reg.json()["session_token"]}
    got = await http.post("/v1/workers/w1/camera/request", headers=headers)
    assert got.json()["assignment"] is not None, got.text
    return camera.json()["id"], headers


async def holder(http: httpx.AsyncClient, tenant: Tenant) -> str | None:
    listed = await http.get("/v1/cameras", headers=tenant.headers(Role.admin))
    lease = listed.json()["items"][0]["lease"]
    return None if lease is None else lease["worker_id"]


async def open_presence_stream(
    server: LiveServer, headers: dict[str, str]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A presence stream on a raw socket, so that closing it is a connection cut mid-stream;
    the reader is past the response's headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    lines = ["GET /v1/workers/w1/presence HTTP/1.1", "Host: facefleet"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    status = await reader.readline()
    assert b" 200 " in status, status
    while await reader.readline() not in (b"\r\n", b""):
        pass
    return reader, writer


async def open_presence(server: LiveServer, headers: dict[str, str]) -> asyncio.StreamWriter:
    return (await open_presence_stream(server, headers))[1]


async def released_within(http: httpx.AsyncClient, tenant: Tenant, seconds: float) -> float:
    began = time.monotonic()
    while await holder(http, tenant) is not None:
        assert time.monotonic() - began < seconds, "the camera was not released in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def test_a_broken_presence_stream_frees_the_camera_a_grace_later(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    tenant = server.new_tenant()
    _, headers = await worker_with_camera(http, tenant)
    stream = await open_presence(server, headers)
    await asyncio.sleep(0.5)
    stream.transport.abort()  # what the kernel does for a process killed with SIGKILL
    took = await released_within(http, tenant, GRACE + 5.0)
    assert took >= GRACE - 0.1
    detail = await http.get("/v1/workers/w1", headers=tenant.headers(Role.admin))
    history = detail.json()["history"]
    reasons = [e["detail"].get("reason") for e in history if e["kind"] == "offline"]
    assert reasons == ["presence lost"], history


async def test_the_break_is_noticed_at_once_not_at_the_next_beat(
    slow_beat_server: LiveServer,
) -> None:
    # Cut just after a beat: a control plane that only noticed when its next beat was due
    # would free the camera up to a beat later than the grace.
    tenant = slow_beat_server.new_tenant()
    async with httpx.AsyncClient(base_url=slow_beat_server.base_url, timeout=10) as http:
        _, headers = await worker_with_camera(http, tenant)
        reader, writer = await open_presence_stream(slow_beat_server, headers)
        beats = 0
        while beats < 2:  # the first comes with the headers, the second a beat later
            beats += (await asyncio.wait_for(reader.readline(), SLOW_BEAT * 3)).count(b".")
        writer.transport.abort()
        took = await released_within(http, tenant, SLOW_BEAT_GRACE + SLOW_BEAT + 5.0)
    assert SLOW_BEAT_GRACE - 0.1 <= took < SLOW_BEAT_GRACE + SLOW_BEAT / 2


async def test_a_worker_back_within_the_grace_keeps_its_camera(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    tenant = server.new_tenant()
    _, headers = await worker_with_camera(http, tenant)
    first = await open_presence(server, headers)
    await asyncio.sleep(0.3)
    first.transport.abort()
    second = await open_presence(server, headers)  # a load balancer cut it: it reconnects
    await asyncio.sleep(GRACE + 1.0)
    assert await holder(http, tenant) == "w1"
    second.transport.abort()

"""The tenant WebSocket over a real server: snapshot, ordered events, isolation, replay,
refusal before the upgrade, and dropping a client that cannot keep up."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from facefleet.api.app import create_app
from facefleet.api.security import Role
from tests.fixtures.harness import Tenant, make_settings
from tests.fixtures.live_server import LiveServer, live_server


@pytest.fixture
def server(database_url: str, hot_settings: dict[str, Any], tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path, database_url, run_background=True, **hot_settings)
    with live_server(create_app(settings)) as running:
        yield running


class Worker:
    def __init__(self, http: httpx.AsyncClient, tenant: Tenant, worker_id: str) -> None:
        self.http, self.tenant, self.worker_id = http, tenant, worker_id
        self.token = ""

    @property
    def headers(self) -> dict[str, str]:
        return {**self.tenant.headers(Role.worker), "X-Worker-Session": self.token}

    async def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.http.request(
            method, f"/v1/workers/{self.worker_id}{path}", headers=self.headers, **kw
        )

    async def register(self) -> None:
        resp = await self.http.post(
            "/v1/workers/register",
            json={"worker_id": self.worker_id},
            headers=self.tenant.headers(Role.worker),
        )
        assert resp.status_code == 200, resp.text
        self.token = resp.json()["session_token"]


async def add_camera(http: httpx.AsyncClient, tenant: Tenant, name: str) -> int:
    resp = await http.post(
        "/v1/cameras",
        json={"name": name, "source_url": "rtsp://10.9.9.9/s"},
        headers=tenant.headers(),
    )
    assert resp.status_code == 201, resp.text
    camera_id: int = resp.json()["id"]
    return camera_id


async def receive(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def events_until(
    ws: ClientConnection, kind: str, timeout: float = 10.0
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            message = await receive(ws, timeout)
            seen.append(message)
            if message.get("kind") == kind:
                return seen


def watch(
    server: LiveServer,
    tenant: Tenant,
    role: Role = Role.viewer,
    *,
    path_tenant: str | None = None,
    **params: Any,
) -> connect:
    """The tenant's event stream, the key offered as a subprotocol as browsers do."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    url = f"{server.ws_url}/v1/workers/ws/{path_tenant or tenant.id}" + (
        f"?{query}" if query else ""
    )
    return connect(url, subprotocols=[Subprotocol("facefleet"), key_protocol(tenant, role)])


def key_protocol(tenant: Tenant, role: Role) -> Subprotocol:
    return Subprotocol(f"facefleet.key.{tenant.keys[role]}")


async def test_scripted_sequence_arrives_in_order_and_only_for_its_tenant(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    a, b = server.new_tenant(), server.new_tenant()
    cam = await add_camera(http, a, "a-cam")
    await add_camera(http, b, "b-cam")
    async with watch(server, a) as ws:
        snapshot = await receive(ws)
        assert snapshot["type"] == "snapshot"
        assert [c["id"] for c in snapshot["data"]["cameras"]] == [cam]
        assert snapshot["data"]["workers"] == []
        start = snapshot["seq"]

        worker = Worker(http, a, "a-1")
        other = Worker(http, b, "b-1")  # tenant B's activity must not show up
        await other.register()
        await worker.register()
        await other.call("POST", "/camera/request")
        got = (await worker.call("POST", "/camera/request")).json()["assignment"]
        assert got["camera_id"] == cam
        beat = await worker.call("POST", "/heartbeat", json={"metrics": {"fps": 7.5}})
        assert beat.status_code == 200
        stats = await events_until(ws, "stats")
        shut = await http.post(
            "/v1/workers/a-1/shutdown/signal", json={"mode": "graceful"}, headers=a.headers()
        )
        assert shut.status_code == 200
        assert (await worker.call("POST", "/heartbeat")).json()["desired_state"] == "stop"
        assert (await worker.call("DELETE", "")).status_code == 200
        rest = await events_until(ws, "deregistered")

    events = stats + rest
    # The leader publishes camera states on its own schedule: checked apart from the order.
    states = [e["data"] for e in events if e["kind"] == "camera_state"]
    assert states and all(s["camera_id"] == cam for s in states)
    assert states[0]["state"] == "starting" and states[0]["worker_id"] == "a-1"
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(start + 1, start + 1 + len(events)))
    events = [e for e in events if e["kind"] != "camera_state"]
    kinds = [e["kind"] for e in events]
    assert kinds == [
        "registered",
        "camera_assigned",
        "stats",
        "shutdown_signalled",
        "camera_released",
        "deregistered",
    ]
    assert all(e["data"].get("worker_id") == "a-1" for e in events if e["kind"] != "stats")
    assert events[1]["data"] == {"worker_id": "a-1", "camera_id": cam, "epoch": 1}
    assert events[2]["data"]["metrics"] == {"a-1": {"fps": 7.5}}
    assert events[3]["data"]["source"] == "operator"


async def test_reconnect_with_since_replays_what_was_missed(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    tenant = server.new_tenant()
    async with watch(server, tenant) as ws:
        last = (await receive(ws))["seq"]
        await Worker(http, tenant, "w1").register()
        last = (await receive(ws))["seq"]
    # While disconnected: two more workers register.
    await Worker(http, tenant, "w2").register()
    await Worker(http, tenant, "w3").register()
    async with watch(server, tenant, since=last) as ws:
        first, second = await receive(ws), await receive(ws)
    assert [first["seq"], second["seq"]] == [last + 1, last + 2]
    assert [first["data"]["worker_id"], second["data"]["worker_id"]] == ["w2", "w3"]
    # A sequence number the server cannot replay gets a fresh snapshot, never a gap.
    async with watch(server, tenant, since=last + 10_000) as ws:
        fresh = await receive(ws)
    assert fresh["type"] == "snapshot"
    assert sorted(w["worker_id"] for w in fresh["data"]["workers"]) == ["w1", "w2", "w3"]


@pytest.mark.parametrize("who", ["other-tenant-admin", "worker-key", "no-key", "key-in-query"])
async def test_other_tenants_and_workers_are_refused_before_the_upgrade(
    server: LiveServer, who: str
) -> None:
    a, b = server.new_tenant(), server.new_tenant()
    sockets: dict[str, Callable[[], connect]] = {
        "other-tenant-admin": lambda: watch(server, a, Role.admin, path_tenant=b.id),
        "worker-key": lambda: watch(server, a, Role.worker),
        "no-key": lambda: connect(f"{server.ws_url}/v1/workers/ws/{a.id}"),
        # The query string is no way in: URLs end up in logs.
        "key-in-query": lambda: connect(
            f"{server.ws_url}/v1/workers/ws/{a.id}?token={a.keys[Role.admin]}"
        ),
    }
    with pytest.raises(InvalidStatus) as refused:
        async with sockets[who]():
            pass
    assert refused.value.response.status_code == 403


async def test_the_key_in_a_header_opens_the_stream(server: LiveServer) -> None:
    tenant = server.new_tenant()
    url = f"{server.ws_url}/v1/workers/ws/{tenant.id}"
    headers = {"Authorization": f"Bearer {tenant.keys[Role.viewer]}"}
    async with connect(url, additional_headers=headers) as ws:
        assert (await receive(ws))["type"] == "snapshot"
    async with watch(server, tenant) as ws:
        assert ws.subprotocol == "facefleet"  # the key is never echoed back
        assert (await receive(ws))["type"] == "snapshot"


async def test_a_client_that_cannot_keep_up_is_dropped_with_a_clear_code(
    server: LiveServer,
) -> None:
    tenant = server.new_tenant()
    async with watch(server, tenant) as ws:
        await receive(ws)

        drops_before = server.state.events.drops

        async def burst() -> None:
            # The client reads nothing meanwhile (this test's loop waits for the burst). The
            # in-process broker publishes without yielding, so the client's queue (256)
            # overflows at once. A Redis broker yields on every publish, so the server keeps
            # sending until the socket buffers are full: the events carry incompressible
            # padding to fill them, and the burst stops at the first drop.
            for i in range(5_000):
                pad = base64.b64encode(os.urandom(12_288)).decode()
                await server.state.events.publish(tenant.id, "stats", {"i": i, "pad": pad})
                if server.state.events.drops > drops_before:
                    return

        server.call(burst())
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await receive(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4008
        assert "since=" in closed.value.rcvd.reason
        assert server.state.events.drops > drops_before
    # The API is not slowed by it: a new client still gets a snapshot right away.
    async with watch(server, tenant) as ws:
        assert (await receive(ws))["type"] == "snapshot"


async def test_a_stream_ends_when_its_key_is_revoked(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    tenant = server.new_tenant()
    resp = await http.post("/v1/keys", json={"role": "viewer"}, headers=tenant.headers())
    assert resp.status_code == 201, resp.text
    created = resp.json()
    url = f"{server.ws_url}/v1/workers/ws/{tenant.id}"
    headers = {"Authorization": f"Bearer {created['key']}"}
    async with connect(url, additional_headers=headers) as ws, watch(server, tenant) as other:
        assert (await receive(ws))["type"] == "snapshot"
        assert (await receive(other))["type"] == "snapshot"
        revoked = await http.delete(f"/v1/keys/{created['id']}", headers=tenant.headers())
        assert revoked.status_code == 200, revoked.text
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await receive(ws, timeout=3.0)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        # Another key's stream goes on.
        server.call(server.state.events.publish(tenant.id, "stats", {"after": True}))
        assert (await events_until(other, "stats"))[-1]["data"] == {"after": True}

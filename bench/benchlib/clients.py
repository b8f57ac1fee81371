"""HTTP clients of the benchmarks: the headers a worker or an admin sends, pools of
single-connection httpx clients, and heartbeat lanes for load generators (prepared requests
sent over one connection each, by httpx or by a minimal HTTP/1.1 client that costs the
generator far less CPU)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import ssl
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import httpx

T = TypeVar("T")
ClientKind = Literal["httpx", "raw"]
HEARTBEAT_METRICS = {"metrics": {"fps": 5.0, "frames_dropped": 0}}
HEARTBEAT_BODY = json.dumps(HEARTBEAT_METRICS).encode()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def worker_headers(key: str, token: str) -> dict[str, str]:
    return {**bearer(key), "X-Worker-Session": token}


class Lender(Generic[T]):
    """Items lent out for one request at a time; a borrower waits for a free one."""

    def __init__(self, items: list[T]) -> None:
        self.items = items
        self._idle: asyncio.Queue[T] = asyncio.Queue()
        for item in items:
            self._idle.put_nowait(item)

    @contextlib.asynccontextmanager
    async def borrow(self) -> AsyncIterator[T]:
        item = await self._idle.get()
        try:
            yield item
        finally:
            self._idle.put_nowait(item)


def single_connection_client(tls: ssl.SSLContext, timeout: float) -> httpx.AsyncClient:
    """An httpx client of one connection.

    httpx's shared pool re-examines every connection on each request (encode/httpx#3215): at
    dozens of connections that costs more client CPU than the request itself, and a load
    generator would measure itself. One client per connection keeps the cost flat.
    """
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(limits=limits, timeout=timeout, verify=tls)


@contextlib.asynccontextmanager
async def client_pool(
    size: int, request_timeout: float = 30.0
) -> AsyncIterator[Lender[httpx.AsyncClient]]:
    """``size`` single-connection clients, closed at the end of the block."""
    tls = ssl.create_default_context()  # unused on loopback HTTP; built once, not per client
    pool = Lender([single_connection_client(tls, request_timeout) for _ in range(size)])
    try:
        yield pool
    finally:
        await asyncio.gather(*(c.aclose() for c in pool.items))


def speed_up_httpcore() -> None:
    """Make httpcore's per-request ``import sniffio`` fail fast when sniffio is absent.

    httpcore 1.0 imports sniffio each time it sets up a lock (twice per request); recent anyio
    no longer installs it, and each failed import walks sys.path. A None entry in sys.modules
    fails the import at once and httpcore then assumes asyncio, which is what runs here.
    """
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Prepared:
    """One worker's heartbeat, prepared once in the form its client sends."""

    request: httpx.Request | None  # for httpx: building a request costs ~0.1 ms of client CPU
    raw: bytes  # for the raw client: the whole HTTP/1.1 request


@dataclass(frozen=True)
class Endpoint:
    """Where and how generators send heartbeats, and the CPUs they run on (none: any)."""

    client: ClientKind
    base_url: str
    worker_key: str
    cpus: tuple[int, ...]


def prepare_heartbeat(to: Endpoint, worker_id: str, token: str) -> Prepared:
    path = f"/v1/workers/{worker_id}/heartbeat"
    headers = {**worker_headers(to.worker_key, token), "Content-Type": "application/json"}
    if to.client == "httpx":
        request = httpx.Request("POST", to.base_url + path, headers=headers, content=HEARTBEAT_BODY)
        return Prepared(request, b"")
    host = to.base_url.removeprefix("http://")
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    raw = f"{head}Content-Length: {len(HEARTBEAT_BODY)}\r\n\r\n".encode() + HEARTBEAT_BODY
    return Prepared(None, raw)


class HttpxLane:
    """One single-connection httpx client."""

    def __init__(self, tls: ssl.SSLContext, timeout: float) -> None:
        self.client = single_connection_client(tls, timeout)

    async def send(self, prepared: Prepared) -> int:
        assert prepared.request is not None
        return (await self.client.send(prepared.request)).status_code

    async def aclose(self) -> None:
        await self.client.aclose()


class RawLane:
    """A keep-alive HTTP/1.1 connection that sends prepared requests and reads the answers.

    It understands just what uvicorn sends back (a Content-Length body) and costs a fraction
    of httpx's CPU per request, so the generator can offer rates httpx cannot on small hosts.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port, self.timeout = host, int(port), timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, prepared: Prepared) -> int:
        try:
            async with asyncio.timeout(self.timeout):
                if self.reader is None or self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.writer.write(prepared.raw)
                head = await self.reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
                await self.reader.readexactly(int(fields.get("content-length", "0")))
        except BaseException:
            await self.aclose()  # the connection's state is unknown: start a new one
            raise
        if fields.get("connection") == "close":
            await self.aclose()
        return status

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


Lane = HttpxLane | RawLane


def lane_pool(kind: ClientKind, base_url: str, size: int, timeout: float = 30.0) -> Lender[Lane]:
    """Heartbeat connections to ``base_url``; close them with close_lanes."""
    tls = ssl.create_default_context()  # unused on loopback HTTP; built once, not per client
    return Lender(
        [
            HttpxLane(tls, timeout) if kind == "httpx" else RawLane(base_url, timeout)
            for _ in range(size)
        ]
    )


async def close_lanes(pool: Lender[Lane]) -> None:
    await asyncio.gather(*(lane.aclose() for lane in pool.items))


async def send_heartbeat(lane: Lane, prepared: Prepared) -> tuple[str | None, float]:
    """Send one heartbeat: (None or the cause of failure, latency in ms)."""
    t0 = time.perf_counter()
    try:
        status = await lane.send(prepared)
    except (httpx.HTTPError, OSError, asyncio.IncompleteReadError) as exc:
        return type(exc).__name__, (time.perf_counter() - t0) * 1000
    latency = (time.perf_counter() - t0) * 1000
    return (None if status == 200 else str(status)), latency

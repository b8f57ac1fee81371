"""WebSocket fan-out benchmark: the latency from a state change (a camera assignment) to its
event arriving at every one of 100 connected clients, while simulated workers heartbeat.

In the same run, the same clients and trigger measure a bare Starlette app on the same
server stack (uvicorn) that broadcasts one message to its WebSocket clients on each POST: the
ratio shows what facefleet's event path (transaction, broker, per-client queues) adds.

    .venv/bin/python bench/ws_fanout.py
    .venv/bin/python bench/ws_fanout.py --clients 100 --changes 200 --workers 2000 --json out.json

Everything runs on 127.0.0.1, every process it starts is stopped on exit, and every step is
bounded in time. Target: p99 under 100 ms with the heartbeat load running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from benchlib import cli
from benchlib.api import add_camera, register, release_camera, request_camera
from benchlib.baselines import BROADCAST_APP
from benchlib.clients import bearer, worker_headers
from benchlib.cpu import describe, machine_info
from benchlib.load import background_fleet
from benchlib.processes import HOST, BenchError, clean_env, free_port
from benchlib.report import Column, Table
from benchlib.servers import (
    ANSWERS,
    HEALTHY,
    facefleet_argv,
    facefleet_env,
    start_server,
    uvicorn_argv,
)
from benchlib.stats import latency_summary, ratio
from benchlib.targets import Target, Targets

TARGETS = (Target("p99_ms", "facefleet fan-out p99", "<", 100.0, " ms", ".1f"),)
Trigger = Callable[[int], Awaitable[tuple[int, float]]]


class Arrivals:
    """Arrival times per change, and an event set when every client has it."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.times: dict[int, list[float]] = {}
        self.complete: dict[int, asyncio.Event] = {}
        self.snapshots = 0
        self.all_snapshots = asyncio.Event()

    def event(self, marker: int) -> asyncio.Event:
        return self.complete.setdefault(marker, asyncio.Event())

    def record(self, marker: int) -> None:
        got = self.times.setdefault(marker, [])
        got.append(time.perf_counter())
        if len(got) == self.clients:
            self.event(marker).set()


async def listen(ws: ClientConnection, arrivals: Arrivals) -> None:
    async for raw in ws:
        message = json.loads(raw)
        if message.get("type") == "snapshot":
            arrivals.snapshots += 1
            if arrivals.snapshots == arrivals.clients:
                arrivals.all_snapshots.set()
        elif message.get("kind") == "camera_assigned":
            data = message["data"]
            arrivals.record(int(data.get("marker", data.get("epoch", -1))))


async def measure(
    ws_url: str, clients: int, changes: int, trigger: Trigger, *, snapshots: bool = True
) -> list[float]:
    """Per change, ms from the request that causes it until the last client received the
    event. ``trigger`` returns the change's marker and when that request was sent."""
    arrivals = Arrivals(clients)
    sockets = [await connect(ws_url, max_queue=None) for _ in range(clients)]
    tasks = [asyncio.create_task(listen(ws, arrivals)) for ws in sockets]
    if snapshots:
        # Every client starts from its snapshot before the first change is timed.
        await asyncio.wait_for(arrivals.all_snapshots.wait(), 300)
    else:
        await asyncio.sleep(1.0)
    latencies = []
    try:
        for i in range(changes):
            marker, sent = await trigger(i)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrivals.event(marker).wait(), 5)
            got = arrivals.times.get(marker, [])
            if len(got) < clients:
                closed = [ws.close_code for ws in sockets if ws.close_code is not None]
                raise BenchError(
                    f"change {i}: only {len(got)} of {clients} clients got it "
                    f"({len(closed)} connections closed, codes {sorted(set(closed))})"
                )
            latencies.append((max(got) - sent) * 1000)
            await asyncio.sleep(0.02)
    finally:
        for task in tasks:
            task.cancel()
        for ws in sockets:
            await ws.close()
    return latencies


async def facefleet_run(args: argparse.Namespace, workdir: Path) -> tuple[list[float], float]:
    port = free_port()
    url = f"http://{HOST}:{port}"
    env = facefleet_env(workdir / "data", port=str(port))
    argv = facefleet_argv("serve")
    with start_server(
        "facefleet", argv, port=port, env=env, cwd=workdir, probe=HEALTHY, data_dir=workdir / "data"
    ) as server:
        keys = server.keys()
        admin_key, worker_key = keys.admin, keys.worker
        async with httpx.AsyncClient(timeout=30) as client:
            await add_camera(client, url, admin_key, 0)
            movers = [
                (wid, await register(client, url, worker_key, wid))
                for wid in ("mover-a", "mover-b")
            ]

            # The movers heartbeat on their own while the load is set up and runs.
            async def keepalive() -> None:
                while True:
                    for wid, token in movers:
                        await client.post(
                            f"{url}/v1/workers/{wid}/heartbeat",
                            headers=worker_headers(worker_key, token),
                        )
                    await asyncio.sleep(1.5)

            beat = asyncio.create_task(keepalive())
            # Spawned: a fork would inherit this process's signal handlers and event loop.
            ctx = multiprocessing.get_context("spawn")
            ready = ctx.Event()
            load = ctx.Process(
                target=background_fleet,
                args=(url, worker_key, args.workers, args.interval, ready),
                daemon=True,
            )
            load.start()
            await asyncio.to_thread(ready.wait, 600)
            await asyncio.sleep(2)
            state: dict[str, Any] = {"holder": -1, "got": None}

            async def trigger(i: int) -> tuple[int, float]:
                # Two workers hand the camera back and forth: each request is one assignment.
                if state["holder"] >= 0:
                    wid, token = movers[state["holder"]]
                    await release_camera(client, url, worker_key, wid, token, state["got"])
                nxt = (state["holder"] + 1) % 2
                sent = time.perf_counter()
                got = await request_camera(client, url, worker_key, *movers[nxt])
                if not got:
                    raise BenchError(f"{movers[nxt][0]} got no camera")
                state["holder"], state["got"] = nxt, got
                return int(got["epoch"]), sent

            try:
                ws_url = f"ws://{HOST}:{port}/v1/workers/ws/{keys.tenant_id}?token={admin_key}"
                latencies = await measure(ws_url, args.clients, args.changes, trigger)
                resp = await client.get(f"{url}/v1/workers/stats", headers=bearer(admin_key))
                stats = resp.json()
            finally:
                beat.cancel()
                load.terminate()
                load.join(10)
            return latencies, float(stats["heartbeats_per_second"])


async def bare_run(args: argparse.Namespace, workdir: Path) -> list[float]:
    port = free_port()
    argv = uvicorn_argv(BROADCAST_APP, port, "--log-level", "warning")
    with start_server("bare", argv, port=port, env=clean_env(), cwd=workdir, probe=ANSWERS):
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=30) as client:

            async def trigger(i: int) -> tuple[int, float]:
                sent = time.perf_counter()
                await client.post("/change", json={"marker": i})
                return i, sent

            return await measure(
                f"ws://{HOST}:{port}/ws", args.clients, args.changes, trigger, snapshots=False
            )


TABLE = Table(Column("", 24), Column("p50 ms", 10), Column("p99 ms", 10), Column("max ms", 10))


def main(argv: list[str] | None = None) -> int:
    targets = Targets(*TARGETS)
    parser = cli.parser(__doc__, targets, "20 clients, 30 changes, 50 workers heartbeating")
    parser.add_argument("--clients", type=int, help="WebSocket clients (100)")
    parser.add_argument("--changes", type=int, help="camera assignments timed (200)")
    parser.add_argument("--workers", type=int, help="simulated heartbeating workers (200)")
    parser.add_argument("--interval", type=float, default=2.0, help="their heartbeat interval")
    args = cli.parse(parser, targets, argv)
    for name, full, quick in (("clients", 100, 20), ("changes", 200, 30), ("workers", 200, 50)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    print(f"facefleet WebSocket fan-out benchmark on {describe(machine_info())}")
    with tempfile.TemporaryDirectory(prefix="facefleet-ws-bench-") as tmp:
        workdir = Path(tmp)
        bare = asyncio.run(bare_run(args, workdir / "bare"))
        ours, rate = asyncio.run(facefleet_run(args, workdir / "facefleet"))
    b, o = latency_summary(bare), latency_summary(ours)
    print(f"{args.clients} WebSocket clients, {args.changes} camera assignments")
    print(
        f"heartbeat load: {args.workers} workers every {args.interval:g} s "
        f"(measured {rate:.0f} heartbeats/s at the control plane)"
    )
    print(TABLE.header())
    print(TABLE.row("bare Starlette", b["p50_ms"], b["p99_ms"], b["max_ms"]))
    print(TABLE.row("facefleet", o["p50_ms"], o["p99_ms"], o["max_ms"]))
    print(
        TABLE.row(
            "ratio facefleet / bare",
            *(f"{ratio(o[k], b[k]):.2f}" for k in ("p50_ms", "p99_ms", "max_ms")),
        )
    )
    print(f"facefleet p99 {o['p99_ms']:.1f} ms ({targets.check('p99_ms', o['p99_ms'])})")
    payload = {
        "bare": b,
        "facefleet": o,
        "ratio_p99": ratio(o["p99_ms"], b["p99_ms"]),
        "heartbeats_per_second": rate,
        "clients": args.clients,
        "changes": args.changes,
        "workers": args.workers,
    }
    return cli.finish(targets, payload, args.json_path)


if __name__ == "__main__":
    sys.exit(cli.run(main))

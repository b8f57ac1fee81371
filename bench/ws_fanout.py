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
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

HOST = "127.0.0.1"
TARGET_P99_MS = 100.0

BARE_APP = """
import asyncio
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

clients = set()

async def ws(websocket):
    await websocket.accept()
    clients.add(websocket)
    try:
        while True:
            await websocket.receive_text()
    except Exception:
        pass
    finally:
        clients.discard(websocket)

async def change(request):
    body = await request.json()
    message = {"type": "event", "kind": "camera_assigned", "data": body}
    for client in list(clients):
        await client.send_json(message)
    return JSONResponse({"sent": len(clients)})

app = Starlette(routes=[WebSocketRoute("/ws", ws), Route("/change", change, methods=["POST"])])
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


@contextlib.contextmanager
def started(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def heartbeat_load(url: str, key: str, workers: int, interval: float, ready: Any) -> None:
    """A separate process: registers ``workers`` simulated workers, each of which then
    heartbeats once per ``interval`` (phases spread at random) until terminated."""

    async def run() -> None:
        limits = httpx.Limits(max_connections=64)
        registered = 0
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            gate = asyncio.Semaphore(16)

            async def worker(worker_id: str) -> None:
                nonlocal registered
                async with gate:
                    resp = await client.post(
                        "/v1/workers/register",
                        json={"worker_id": worker_id},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                resp.raise_for_status()
                headers = as_worker(key, resp.json()["session_token"])
                registered += 1
                if registered == workers:
                    ready.set()
                await asyncio.sleep(random.uniform(0, interval))
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        await client.post(
                            f"/v1/workers/{worker_id}/heartbeat",
                            json={"metrics": {"fps": 5.0}},
                            headers=headers,
                        )
                    await asyncio.sleep(interval)

            await asyncio.gather(*(worker(f"load-{i:05d}") for i in range(workers)))

    asyncio.run(run())


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
    ws_url: str,
    clients: int,
    changes: int,
    trigger: Any,
    *,
    snapshots: bool = True,
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
                raise SystemExit(
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


def as_worker(key: str, token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "X-Worker-Session": token}


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }


async def facefleet_run(args: argparse.Namespace, workdir: Path) -> tuple[list[float], float]:
    port = free_port()
    url = f"http://{HOST}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEFLEET_")}
    env |= {"FACEFLEET_DATA_DIR": str(workdir / "data"), "FACEFLEET_PORT": str(port)}
    with started([sys.executable, "-m", "facefleet", "serve"], env, workdir) as server:
        wait_healthy(f"{url}/healthz", server)
        keys = json.loads((workdir / "data" / "default-tenant-keys.json").read_text())
        admin = {"Authorization": f"Bearer {keys['keys']['admin']}"}
        worker_key = keys["keys"]["worker"]
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            cam = await client.post(
                "/v1/cameras",
                json={"name": "bench", "source_url": "rtsp://127.0.0.1/x"},
                headers=admin,
            )
            cam.raise_for_status()
            camera_id = cam.json()["id"]
            sessions: list[tuple[str, str]] = []
            sem = asyncio.Semaphore(32)

            async def register(worker_id: str) -> None:
                async with sem:
                    resp = await client.post(
                        "/v1/workers/register",
                        json={"worker_id": worker_id},
                        headers={"Authorization": f"Bearer {worker_key}"},
                    )
                    resp.raise_for_status()
                    sessions.append((worker_id, resp.json()["session_token"]))

            await register("mover-a")
            await register("mover-b")
            movers = list(sessions)

            # The movers heartbeat on their own while the load is set up and runs.
            async def keepalive() -> None:
                while True:
                    for wid, token in movers:
                        await client.post(
                            f"/v1/workers/{wid}/heartbeat", headers=as_worker(worker_key, token)
                        )
                    await asyncio.sleep(1.5)

            beat = asyncio.create_task(keepalive())
            ready = multiprocessing.Event()
            load = multiprocessing.Process(
                target=heartbeat_load,
                args=(url, worker_key, args.workers, args.interval, ready),
                daemon=True,
            )
            load.start()
            await asyncio.to_thread(ready.wait, 600)
            await asyncio.sleep(2)
            state = {"holder": -1, "epoch": 0}

            async def trigger(i: int) -> tuple[int, float]:
                # Two workers hand the camera back and forth: each request is one assignment.
                if state["holder"] >= 0:
                    wid, token = movers[state["holder"]]
                    await client.post(
                        f"/v1/workers/{wid}/camera/release",
                        json={"camera_id": camera_id, "epoch": state["epoch"]},
                        headers={
                            "Authorization": f"Bearer {worker_key}",
                            "X-Worker-Session": token,
                        },
                    )
                nxt = (state["holder"] + 1) % 2
                wid, token = movers[nxt]
                sent = time.perf_counter()
                resp = await client.post(
                    f"/v1/workers/{wid}/camera/request",
                    headers=as_worker(worker_key, token),
                )
                assignment = resp.json().get("assignment")
                if not assignment:
                    raise SystemExit(f"no assignment: {resp.status_code} {resp.text}")
                epoch = int(assignment["epoch"])
                state["holder"], state["epoch"] = nxt, epoch
                return epoch, sent

            try:
                token = keys["keys"]["admin"]
                ws_url = f"ws://{HOST}:{port}/v1/workers/ws/{keys['tenant_id']}?token={token}"
                latencies = await measure(ws_url, args.clients, args.changes, trigger)
                stats = (await client.get("/v1/workers/stats", headers=admin)).json()
            finally:
                beat.cancel()
                load.terminate()
                load.join(10)
            return latencies, float(stats["heartbeats_per_second"])


async def bare_run(args: argparse.Namespace, workdir: Path) -> list[float]:
    port = free_port()
    (workdir / "bare_app.py").write_text(BARE_APP)
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bare_app:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with started(cmd, dict(os.environ), workdir) as server:
        wait_healthy(f"http://{HOST}:{port}/change-not-found", server)
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=30) as client:

            async def trigger(i: int) -> tuple[int, float]:
                sent = time.perf_counter()
                await client.post("/change", json={"marker": i})
                return i, sent

            return await measure(
                f"ws://{HOST}:{port}/ws", args.clients, args.changes, trigger, snapshots=False
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--workers", type=int, default=200, help="simulated heartbeating workers")
    parser.add_argument("--interval", type=float, default=2.0, help="their heartbeat interval")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facefleet-ws-bench-") as tmp:
        workdir = Path(tmp)
        bare = asyncio.run(bare_run(args, workdir))
        ours, rate = asyncio.run(facefleet_run(args, workdir))
    b, o = summary(bare), summary(ours)
    print(f"{args.clients} WebSocket clients, {args.changes} camera assignments")
    print(
        f"heartbeat load: {args.workers} workers every {args.interval:g} s "
        f"(measured {rate:.0f} heartbeats/s at the control plane)"
    )
    print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    print(f"{'bare Starlette':24}{b['p50']:10.1f}{b['p99']:10.1f}{b['max']:10.1f}")
    print(f"{'facefleet':24}{o['p50']:10.1f}{o['p99']:10.1f}{o['max']:10.1f}")
    print(f"ratio facefleet / bare (p99): {o['p99'] / b['p99']:.2f}")
    verdict = "met" if o["p99"] < TARGET_P99_MS else "missed"
    print(f"target p99 < {TARGET_P99_MS:.0f} ms: {verdict} ({o['p99']:.1f} ms)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "bare": b,
                    "facefleet": o,
                    "heartbeats_per_second": rate,
                    "clients": args.clients,
                    "changes": args.changes,
                }
            )
        )


if __name__ == "__main__":
    main()

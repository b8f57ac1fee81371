"""Simulated workers that heartbeat, run in load generator processes (spawned, so each has its
own interpreter and event loop):

* closed: enrolled workers send heartbeats as fast as ``concurrency`` requests in flight allow;
* paced: each generator enrols its share of a fleet, then every worker heartbeats once per
  interval on its own slot, the fleet's slots spread evenly over the interval;
* background: registered workers heartbeat at random phases behind another measurement.

The main process's side (the measured window, its CPU) is in ``benchlib.drive``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any, Literal

import httpx

from benchlib.api import ApiError, enroll, register, worker_id_of
from benchlib.clients import (
    Endpoint,
    Lane,
    Lender,
    client_pool,
    close_lanes,
    lane_pool,
    prepare_heartbeat,
    send_heartbeat,
    speed_up_httpcore,
    worker_headers,
)


@dataclass(frozen=True)
class GeneratorSpec:
    index: int
    mode: Literal["closed", "paced"]
    to: Endpoint
    concurrency: int  # connections, each carrying one heartbeat at a time
    duration: float  # of the measured window
    deadline: float  # wall-clock time after which the generator gives up on its own
    # closed: enrolled (worker_id, token) pairs to cycle through.
    credentials: tuple[tuple[str, str], ...]
    # paced: global worker indexes this generator enrols and then drives.
    fleet: tuple[int, ...]
    fleet_size: int
    interval: float
    setup_concurrency: int
    epoch: float  # wall-clock origin of the paced schedule, shared by all generators


def generator_specs(
    to: Endpoint,
    mode: Literal["closed", "paced"],
    generators: int,
    concurrency: int,
    duration: float,
    *,
    credentials: list[tuple[str, str]] | None = None,
    workers: int = 0,
    interval: float = 0.0,
    setup_concurrency: int = 1,
    setup_timeout: float = 0.0,
) -> list[GeneratorSpec]:
    """The work of ``generators`` processes.

    closed: ``concurrency`` heartbeats in flight in all, each process cycling through its
    share of the enrolled ``credentials``. paced: a fleet of ``workers`` dealt out to the
    processes, which enrol ``setup_concurrency`` workers at a time in all, then heartbeat
    every ``interval`` over ``concurrency`` connections per process (for latency spikes).
    """
    epoch = time.time()
    given = credentials or []
    if mode == "closed":
        deadline = epoch + duration + 120.0
    else:
        deadline = epoch + setup_timeout + duration + 600.0
    return [
        GeneratorSpec(
            index=g,
            mode=mode,
            to=to,
            concurrency=concurrency // generators + (1 if g < concurrency % generators else 0)
            if mode == "closed"
            else concurrency,
            duration=duration,
            deadline=deadline,
            credentials=tuple(given[g::generators]) or tuple(given),
            fleet=tuple(range(g, workers, generators)),
            fleet_size=workers,
            interval=interval,
            setup_concurrency=max(1, setup_concurrency // generators),
            epoch=epoch,
        )
        for g in range(generators)
    ]


@dataclass
class Ready:
    index: int
    setup_seconds: float
    enrolled: int
    failures: dict[str, int]


@dataclass
class Progress:
    index: int
    enrolled: int  # paced: workers enrolled so far (failures included)


@dataclass
class GeneratorResult:
    index: int
    ok: int = 0  # 200 responses to requests sent inside the window
    sent: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # inside the window, by cause
    errors_total: dict[str, int] = field(default_factory=dict)  # whole run after enrolment
    latencies_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)  # paced: sent how late after its slot
    skipped: int = 0  # paced: slots dropped because the worker was a whole interval late
    max_gap: float = 0.0  # paced: longest time between two successful heartbeats of a worker
    max_gap_window: float = 0.0  # the same, for gaps that ended inside the window
    lost: int = 0  # paced: workers told they are not registered (404), which then stop
    enrolled: int = 0  # paced: workers registered with a camera lease
    cpu_seconds: float = math.nan  # generator CPU inside the window
    error: str | None = None  # the generator itself failed


Message = tuple[Literal["ready", "progress", "result"], Ready | Progress | GeneratorResult]


class Window:
    """The measured interval as a generator sees it: unset until the main process opens it."""

    def __init__(self, start: Synchronized[float], duration: float) -> None:
        self._shared = start
        self.duration = duration
        self.start = math.inf
        self.end = math.inf

    def refresh(self) -> None:
        if math.isinf(self.start) and (value := self._shared.value) > 0:
            self.start = value
            self.end = value + self.duration

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end


def run_loop(coro: Coroutine[Any, Any, None]) -> None:
    # uvloop trims the client's share of the CPU; it is what uvicorn runs the servers on.
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def generator_main(
    spec: GeneratorSpec, start: Synchronized[float], stop: Event, out: Queue[Message]
) -> None:
    """Entry point of a generator process."""
    speed_up_httpcore()
    if spec.to.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, spec.to.cpus)
    result = GeneratorResult(spec.index)
    try:
        run_loop(_generate(spec, Window(start, spec.duration), stop, out, result))
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    out.put(("result", result))


async def _generate(
    spec: GeneratorSpec,
    window: Window,
    stop: Event,
    out: Queue[Message],
    result: GeneratorResult,
) -> None:
    lanes = lane_pool(spec.to.client, spec.to.base_url, spec.concurrency)
    stopping = asyncio.Event()
    cpu_at_start: list[float] = []

    async def watch() -> None:
        # Shared-memory reads take a lock, so the hot loops read local copies refreshed here.
        while not stopping.is_set():
            window.refresh()
            now = time.time()
            if not cpu_at_start and now >= window.start:
                cpu_at_start.append(time.process_time())
            if now >= window.end and math.isnan(result.cpu_seconds) and cpu_at_start:
                result.cpu_seconds = time.process_time() - cpu_at_start[0]
            done = now >= window.end if spec.mode == "closed" else stop.is_set()
            if done or now >= spec.deadline:
                stopping.set()
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    if spec.mode == "closed":
        out.put(("ready", Ready(spec.index, 0.0, len(spec.credentials), {})))
        await _closed_loop(spec, lanes, window, stopping, result)
    else:
        await _paced_fleet(spec, lanes, window, stopping, out, result)
    stopping.set()
    await watcher
    await close_lanes(lanes)


async def _closed_loop(
    spec: GeneratorSpec,
    lanes: Lender[Lane],
    window: Window,
    stopping: asyncio.Event,
    result: GeneratorResult,
) -> None:
    targets = [prepare_heartbeat(spec.to, wid, token) for wid, token in spec.credentials]
    errors: Counter[str] = Counter()

    async def run_lane(first: int, lane: Lane) -> None:
        i = first
        while not stopping.is_set():
            target = targets[i % len(targets)]
            i += spec.concurrency
            failure, latency = await send_heartbeat(lane, target)
            # A request counts when it completes inside the window: that is the served rate.
            if not window.contains(time.time()):
                continue
            result.sent += 1
            if failure is None:
                result.ok += 1
                result.latencies_ms.append(latency)
            else:
                errors[failure] += 1

    # Each coroutine owns one connection: exactly `concurrency` requests in flight.
    await asyncio.gather(*(run_lane(k, lane) for k, lane in enumerate(lanes.items)))
    result.errors = dict(errors)
    result.errors_total = dict(errors)


async def _paced_fleet(
    spec: GeneratorSpec,
    lanes: Lender[Lane],
    window: Window,
    stopping: asyncio.Event,
    out: Queue[Message],
    result: GeneratorResult,
) -> None:
    started = time.perf_counter()
    failures: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    errors_total: Counter[str] = Counter()
    pending = len(spec.fleet)
    all_enrolled = asyncio.Event()

    def enrolled_one() -> None:
        nonlocal pending
        pending -= 1
        if pending == 0:
            all_enrolled.set()
        elif pending % 250 == 0:
            out.put(("progress", Progress(spec.index, len(spec.fleet) - pending)))

    async def simulated_worker(index: int) -> None:
        wid = worker_id_of(index)
        async with setup_pool.borrow() as client:
            try:
                token = await enroll(client, spec.to.base_url, spec.to.worker_key, wid)
            except (ApiError, httpx.HTTPError) as problem:
                failures[str(problem) or type(problem).__name__] += 1
                enrolled_one()
                return
        result.enrolled += 1
        enrolled_one()
        target = prepare_heartbeat(spec.to, wid, token)
        # Slot k of this worker is epoch + phase + k * interval: the fleet's heartbeats are
        # spread evenly over each interval, as jittered real workers would be on average.
        phase = spec.interval * index / spec.fleet_size
        last_ok = time.time()
        due = spec.epoch + phase
        due += math.ceil(max(0.0, last_ok - due) / spec.interval) * spec.interval
        while True:
            # A plain sleep is the cheapest timer; the task is cancelled when the run stops.
            await asyncio.sleep(max(0.0, due - time.time()))
            async with lanes.borrow() as lane:
                sent = time.time()
                failure, latency = await send_heartbeat(lane, target)
            if failure is None:
                now = time.time()
                result.max_gap = max(result.max_gap, now - last_ok)
                if window.contains(now):
                    result.max_gap_window = max(result.max_gap_window, now - last_ok)
                last_ok = now
            else:
                errors_total[failure] += 1
            if window.contains(sent):
                result.sent += 1
                # Lateness behind the slot: generator scheduling plus waiting for a client.
                result.lag_ms.append((sent - due) * 1000)
                if failure is None:
                    result.ok += 1
                    result.latencies_ms.append(latency)
                else:
                    errors[failure] += 1
            if failure == "404":
                # The reaper took this worker offline; a real agent would register again,
                # which is another workload: this one stops and is counted as lost.
                result.lost += 1
                return
            due += spec.interval
            # A worker more than a whole interval late drops the missed slots instead of
            # bursting; the drops are reported, as they lower the offered rate.
            while due < time.time():
                due += spec.interval
                result.skipped += 1

    # The pool's size bounds the enrolments in flight, as real agents starting together.
    async with client_pool(spec.setup_concurrency) as setup_pool:
        tasks = [asyncio.create_task(simulated_worker(i)) for i in spec.fleet]
        if not tasks:
            all_enrolled.set()
        waits = [asyncio.create_task(all_enrolled.wait()), asyncio.create_task(stopping.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if all_enrolled.is_set():
            enrolled = len(spec.fleet) - sum(failures.values())
            setup_s = time.perf_counter() - started
            out.put(("ready", Ready(spec.index, setup_s, enrolled, dict(failures))))
        await stopping.wait()
        for task in [*tasks, *waits]:
            task.cancel()
        await asyncio.gather(*tasks, *waits, return_exceptions=True)
    result.errors = dict(errors)
    result.errors_total = dict(errors_total)


def background_fleet(url: str, key: str, workers: int, interval: float, ready: Event) -> None:
    """Entry point of a process: registers ``workers`` simulated workers, sets ``ready``, and
    each then heartbeats once per ``interval`` (phases spread at random) until terminated."""

    async def run() -> None:
        limits = httpx.Limits(max_connections=64)
        registered = 0
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            gate = asyncio.Semaphore(16)

            async def worker(worker_id: str) -> None:
                nonlocal registered
                async with gate:
                    token = await register(client, url, key, worker_id)
                headers = worker_headers(key, token)
                registered += 1
                if registered == workers:
                    ready.set()
                await asyncio.sleep(random.uniform(0, interval))
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        await client.post(
                            f"{url}/v1/workers/{worker_id}/heartbeat",
                            json={"metrics": {"fps": 5.0}},
                            headers=headers,
                        )
                    await asyncio.sleep(interval)

            await asyncio.gather(*(worker(worker_id_of(i, "load")) for i in range(workers)))

    asyncio.run(run())

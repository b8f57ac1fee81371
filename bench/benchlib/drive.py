"""The main process's side of a load generator run: start the generators, open the measured
window once all are ready, read the server's and the machine's CPU over it, collect results."""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import queue
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from benchlib.cpu import machine_cpu, usable_cpus
from benchlib.load import GeneratorResult, GeneratorSpec, Message, Progress, Ready, generator_main
from benchlib.processes import BenchError
from benchlib.servers import Server
from benchlib.stats import latency_summary, merge_counts


@dataclass
class Drive:
    """What the main process saw of one generator run."""

    results: list[GeneratorResult]
    ready: list[Ready]
    window_start: float  # inf when the generators never got ready
    server_cpu: float | None  # CPU seconds of the server inside the window
    machine_busy: float | None  # CPU seconds the whole machine was busy inside the window
    checks: dict[str, Any]


def drive(
    server: Server,
    specs: list[GeneratorSpec],
    *,
    duration: float,
    settle: float,
    ready_timeout: float,
    before_window: Callable[[], dict[str, Any]] | None = None,
    at_window_end: Callable[[], dict[str, Any]] | None = None,
) -> Drive:
    """Run generator processes, open the window once all are ready, collect their results.

    ``before_window`` runs a second before the window opens, ``at_window_end`` right after
    it, while paced generators still keep the fleet alive, so its queries do not disturb the
    measurement and see a live fleet. When the generators are not ready in time no window
    opens: the run stops there and reports what it saw, which on an overloaded server is the
    finding.
    """
    ctx = mp.get_context("spawn")
    start: Synchronized[float] = ctx.Value("d", 0.0)
    stop = ctx.Event()
    out: Queue[Message] = ctx.Queue()
    procs: list[SpawnProcess] = [
        ctx.Process(target=generator_main, args=(s, start, stop, out), daemon=True) for s in specs
    ]
    results: dict[int, GeneratorResult] = {}
    ready: dict[int, Ready] = {}
    progress: dict[int, int] = {}
    checks: dict[str, Any] = {}
    baseline: dict[str, Any] = {}
    window_start = math.inf
    cpu0 = cpu1 = None
    machine0 = machine1 = None

    def receive(timeout: float) -> None:
        _, payload = out.get(timeout=timeout)
        if isinstance(payload, GeneratorResult):
            results[payload.index] = payload
            if payload.error:
                raise BenchError(f"generator {payload.index} failed: {payload.error}")
        elif isinstance(payload, Progress):
            progress[payload.index] = payload.enrolled
        else:
            ready[payload.index] = payload

    try:
        for proc in procs:
            proc.start()
        started = time.monotonic()
        reported = started
        while len(ready) < len(specs) and time.monotonic() - started < ready_timeout:
            with contextlib.suppress(queue.Empty):
                receive(1.0)
            if progress and time.monotonic() - reported >= 30:
                reported = time.monotonic()
                print(f"  ... {sum(progress.values())} enrolled after {reported - started:.0f}s")
        if len(ready) == len(specs):
            window_start = time.time() + settle
            start.value = window_start
            if before_window is not None:
                time.sleep(max(0.0, window_start - 1.0 - time.time()))
                baseline = before_window()
            time.sleep(max(0.0, window_start - time.time()))
            cpu0, machine0 = server.cpu(), machine_cpu()
            time.sleep(max(0.0, window_start + duration - time.time()))
            cpu1, machine1 = server.cpu(), machine_cpu()
        else:
            print(f"  not ready after {ready_timeout:.0f}s: stopping without a measurement")
        if at_window_end is not None:
            checks = at_window_end()
            checks["baseline"] = baseline
        stop.set()
        deadline = time.monotonic() + 120.0
        while len(results) < len(specs):
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("generators did not report their results")
            with contextlib.suppress(queue.Empty):
                receive(min(left, 1.0))
    finally:
        stop.set()
        for proc in procs:
            if proc.pid is None:
                continue  # never started
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join()
    server_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    busy = None if machine0 is None or machine1 is None else machine1[0] - machine0[0]
    return Drive(
        [results[i] for i in sorted(results)],
        [ready[i] for i in sorted(ready)],
        window_start,
        server_cpu,
        busy,
        checks,
    )


def pinned_cpus(pin: bool) -> tuple[set[int] | None, tuple[int, ...]]:
    """CPU sets of (server, generators): the first CPU for the server when pinning."""
    cpus = usable_cpus()
    if not pin or len(cpus) < 2:
        return None, ()
    return {cpus[0]}, tuple(cpus[1:])


def cpu_shares(run: Drive, duration: float) -> dict[str, float | None]:
    """CPU use inside the window in CPUs (1.0 = one core busy all the time).

    ``other`` is what the rest of the machine used meanwhile: anything above a few percent
    means the figures were taken on a machine that was not otherwise idle.
    """
    gen = sum(r.cpu_seconds for r in run.results)
    other = None
    if run.machine_busy is not None and run.server_cpu is not None:
        other = max(0.0, run.machine_busy - run.server_cpu - gen) / duration
    return {
        "server": None if run.server_cpu is None else run.server_cpu / duration,
        "generators": gen / duration,
        "other": other,
        "machine": None if run.machine_busy is None else run.machine_busy / duration,
    }


def mean_shares(runs: list[Drive], duration: float) -> dict[str, float | None]:
    """cpu_shares averaged over rounds; None for a share that a round could not measure."""
    shares = [cpu_shares(run, duration) for run in runs]
    out: dict[str, float | None] = {}
    for key in ("server", "generators", "other", "machine"):
        values = [s[key] for s in shares]
        known = [v for v in values if v is not None]
        out[key] = statistics.fmean(known) if len(known) == len(values) else None
    return out


def summarize_rounds(runs: list[Drive], duration: float) -> dict[str, Any]:
    """Closed-loop rounds of one server: the median rate, pooled latencies, mean CPU shares,
    CPU per request."""
    rates = [sum(r.ok for r in run.results) / duration for run in runs]
    ok = sum(r.ok for run in runs for r in run.results)
    known = [run.server_cpu for run in runs if run.server_cpu is not None]
    gen_cpu = sum(r.cpu_seconds for run in runs for r in run.results)
    return {
        "requests_per_s": statistics.median(rates),
        "rounds_per_s": rates,
        "ok": ok,
        "errors": merge_counts(r.errors for run in runs for r in run.results),
        "latency": latency_summary(
            [v for run in runs for r in run.results for v in r.latencies_ms]
        ),
        "cpu": mean_shares(runs, duration),
        "server_cpu_us_per_request": sum(known) / ok * 1e6
        if ok and len(known) == len(runs)
        else None,
        "generator_cpu_us_per_request": gen_cpu / ok * 1e6 if ok else None,
    }

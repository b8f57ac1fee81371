"""The worker agent: register, heartbeat at the server's interval, take cameras while it has
capacity, run each camera's stream, obey every heartbeat response, fence itself when the
control plane cannot confirm its leases, and leave cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facefleet.worker import system_metrics
from facefleet.worker.command_handlers import execute
from facefleet.worker.pipeline.processor import CameraRunner
from facefleet.worker.worker_client import (
    ApiError,
    Assignment,
    Command,
    ConnectionFailed,
    HeartbeatResult,
    StaleEpoch,
    WorkerClient,
    WorkerClientError,
    WorkerIdInUse,
)

log = logging.getLogger("facefleet.worker")

RunnerFactory = Callable[[Assignment], CameraRunner]


@dataclass
class Stream:
    assignment: Assignment
    runner: CameraRunner
    task: asyncio.Task[None]
    started_at: float = field(default_factory=time.monotonic)


@dataclass
class AgentState:
    desired_state: str = "run"
    heartbeat_interval: float = 2.0
    jitter: float = 0.1
    lease_ttl: float = 6.0
    last_confirmed: float = field(default_factory=time.monotonic)
    fenced: bool = False


class IdentityRefused(Exception):
    """Another live process holds this WORKER_ID."""


class WorkerAgent:
    def __init__(
        self,
        client: WorkerClient,
        runner_factory: RunnerFactory,
        *,
        fence_margin: float = 1.0,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.client = client
        self.runner_factory = runner_factory
        self.fence_margin = fence_margin
        self.shutdown_timeout = shutdown_timeout
        self.streams: dict[int, Stream] = {}
        self._stopped_at: dict[int, float] = {}
        self.state = AgentState()
        self.stopping = asyncio.Event()
        self._capacity_changed = asyncio.Event()
        self._stopping_streams: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------

    async def register(self) -> None:
        try:
            reg = await self.client.register()
        except WorkerIdInUse as exc:
            # The holder may be this worker's own previous process, not yet stale: wait once.
            wait = exc.retry_after or 0.0
            if wait <= 0 or wait > 30:
                raise IdentityRefused(exc.detail) from exc
            log.warning("worker_id in use, retrying in %.1fs: %s", wait, exc.detail)
            await asyncio.sleep(wait)
            try:
                reg = await self.client.register()
            except WorkerIdInUse as again:
                raise IdentityRefused(again.detail) from again
        self.state.heartbeat_interval = reg.heartbeat_interval
        self.state.jitter = reg.heartbeat_jitter
        self.state.lease_ttl = reg.lease_ttl
        self.state.desired_state = reg.desired_state
        self.state.last_confirmed = time.monotonic()
        log.info(
            "registered as %s (heartbeat %.1fs, lease TTL %.1fs, kept cameras %s)",
            reg.worker_id,
            reg.heartbeat_interval,
            reg.lease_ttl,
            [le.camera_id for le in reg.leases if le.valid],
        )
        kept = {le.camera_id for le in reg.leases if le.valid}
        if kept:
            for assignment in (await self.client.current_cameras()).assignments:
                if assignment.camera_id in kept:
                    self.start_stream(assignment)

    async def run(self) -> None:
        """Run until stop() or a stop from the control plane; then leave cleanly."""
        await self.register()
        loops = [
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._assignment_loop(), name="assignment"),
            asyncio.create_task(self._fence_loop(), name="fence"),
        ]
        try:
            await self.stopping.wait()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._leave()

    def stop(self) -> None:
        self.stopping.set()

    async def _leave(self) -> None:
        """Stop streams, signal shutdown (cameras freed at once), deregister."""
        deadline = time.monotonic() + self.shutdown_timeout
        await self._stop_all("shutting down", grace=self.shutdown_timeout / 2)
        remaining = max(0.5, deadline - time.monotonic())
        try:
            async with asyncio.timeout(remaining):
                await self.client.signal_shutdown("worker stopping")
                await self.client.deregister()
            log.info("signalled shutdown and deregistered")
        except (TimeoutError, WorkerClientError) as exc:
            log.warning("could not deregister cleanly (%s); the lease TTL will free cameras", exc)

    # -- loops ----------------------------------------------------------------------------

    def _next_interval(self) -> float:
        spread = self.state.heartbeat_interval * self.state.jitter
        return max(0.05, self.state.heartbeat_interval + random.uniform(-spread, spread))

    async def _heartbeat_loop(self) -> None:
        while True:
            sent_at = time.monotonic()
            try:
                result = await self.client.heartbeat(self.metrics())
            except (ConnectionFailed, ApiError) as exc:
                log.warning("heartbeat failed: %s", exc)
            else:
                self.state.last_confirmed = sent_at
                if self.state.fenced:
                    log.info("control plane reachable again; leases confirmed")
                    self.state.fenced = False
                await self._obey(result, sent_at)
            await asyncio.sleep(self._next_interval())

    async def _fence_loop(self) -> None:
        """Stop every stream before the control plane can hand its camera on."""
        while True:
            silent = time.monotonic() - self.state.last_confirmed
            budget = self.state.lease_ttl - self.fence_margin
            if silent >= budget and self.streams and not self.state.fenced:
                self.state.fenced = True
                log.warning(
                    "fenced: no confirmed heartbeat for %.1fs (lease TTL %.1fs); "
                    "stopping all streams",
                    silent,
                    self.state.lease_ttl,
                )
                await self._stop_all("fenced")
            await asyncio.sleep(0.1)

    async def _assignment_loop(self) -> None:
        capacity = self.client.capacity
        while True:
            if (
                self.state.desired_state == "run"
                and not self.state.fenced
                and len(self.streams) < capacity
            ):
                wait = await self._request_camera()
            else:
                wait = self.state.heartbeat_interval
            self._capacity_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._capacity_changed.wait(), wait)

    async def _request_camera(self) -> float:
        try:
            result = await self.client.request_camera()
        except (ConnectionFailed, ApiError) as exc:
            log.warning("camera request failed: %s", exc)
            return self.state.heartbeat_interval
        if result.assignment is None:
            base = result.retry_after or self.state.heartbeat_interval
            return base * random.uniform(0.8, 1.2)
        self.start_stream(result.assignment)
        return 0.0

    # -- acting on the control plane ------------------------------------------------------

    async def _obey(self, result: HeartbeatResult, sent_at: float | None = None) -> None:
        self.state.heartbeat_interval = result.heartbeat_interval
        self.state.lease_ttl = result.lease_ttl
        valid = {le.camera_id: le.epoch for le in result.leases if le.valid}
        for camera_id, stream in list(self.streams.items()):
            if sent_at is not None and stream.started_at > sent_at:
                continue  # taken after this heartbeat left: its leases cannot show it yet
            if valid.get(camera_id) != stream.assignment.epoch:
                await self.stop_stream(camera_id, "lease revoked")
        orphaned = {
            cid: epoch
            for cid, epoch in valid.items()
            if cid not in self.streams
            # A stream stopped after this heartbeat left was stopped on purpose.
            and (sent_at is None or self._stopped_at.get(cid, 0.0) < sent_at)
        }
        if orphaned and not self.state.fenced and result.desired_state != "stop":
            await self._resume(orphaned)
        if result.desired_state != self.state.desired_state:
            log.info("control plane says %s", result.desired_state)
            self.state.desired_state = result.desired_state
        if result.gallery_version is not None:
            for stream in self.streams.values():
                notify = getattr(stream.runner.processor, "on_gallery_version", None)
                if notify is not None:
                    notify(result.gallery_version)
        for command in result.commands:
            await self._execute(command)
        if result.desired_state == "stop":
            self.stop()

    async def _resume(self, orphaned: dict[int, int]) -> None:
        """Run again the cameras this worker still holds but does not stream (after fencing
        itself through an outage the control plane survived): otherwise they would stay
        leased to an idle worker."""
        try:
            current = await self.client.current_cameras()
        except WorkerClientError as exc:
            log.warning("could not fetch held cameras: %s", exc)
            return
        for assignment in current.assignments:
            if orphaned.get(assignment.camera_id) == assignment.epoch:
                log.info("resuming camera %d: its lease is still valid", assignment.camera_id)
                self.start_stream(assignment)

    async def _execute(self, command: Command) -> None:
        status, outcome = await execute(self, command)
        try:
            await self.client.ack_command(command.id, status, outcome)
        except WorkerClientError as exc:
            log.warning("could not acknowledge command %s: %s", command.id, exc)

    # -- streams --------------------------------------------------------------------------

    def start_stream(self, assignment: Assignment) -> None:
        if assignment.camera_id in self.streams:
            return
        runner = self.runner_factory(assignment)
        task = asyncio.create_task(self._run_stream(assignment, runner))
        self.streams[assignment.camera_id] = Stream(assignment, runner, task)
        log.info(
            "streaming camera %d (%s) at epoch %d",
            assignment.camera_id,
            assignment.name,
            assignment.epoch,
        )

    async def _run_stream(self, assignment: Assignment, runner: CameraRunner) -> None:
        try:
            await runner.run()
        finally:
            stream = self.streams.get(assignment.camera_id)
            if stream is not None and stream.runner is runner and not self.stopping.is_set():
                # The source ended on its own: give the camera back for someone else.
                self.streams.pop(assignment.camera_id, None)
                self._stopped_at[assignment.camera_id] = time.monotonic()
                with contextlib.suppress(WorkerClientError):
                    await self.client.release_camera(assignment.camera_id, assignment.epoch)
                self._capacity_changed.set()

    async def stop_stream(self, camera_id: int, reason: str, grace: float = 5.0) -> None:
        stream = self.streams.pop(camera_id, None)
        if stream is None:
            return
        self._stopped_at[camera_id] = time.monotonic()
        log.info("stopping camera %d: %s", camera_id, reason)
        await stream.runner.stop(grace)
        stream.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await stream.task
        self._capacity_changed.set()

    def stop_stale_stream(self, camera_id: int, epoch: int) -> None:
        """The control plane refused this epoch: stop the stream now, without waiting here.

        Called from inside the stream's own pipeline, which stop_stream() waits on.
        """
        stream = self.streams.get(camera_id)
        if stream is None or stream.assignment.epoch != epoch:
            return  # already stopped, or the camera came back at a newer epoch
        task = asyncio.create_task(self.stop_stream(camera_id, "stale epoch"))
        self._stopping_streams.add(task)
        task.add_done_callback(self._stopping_streams.discard)

    async def _stop_all(self, reason: str, grace: float = 5.0) -> None:
        await asyncio.gather(*(self.stop_stream(cid, reason, grace) for cid in list(self.streams)))

    async def release(self, camera_id: int) -> bool:
        """Stop a camera and give it back (the release_camera command)."""
        stream = self.streams.get(camera_id)
        if stream is None:
            return False
        epoch = stream.assignment.epoch
        await self.stop_stream(camera_id, "release requested")
        with contextlib.suppress(StaleEpoch):
            await self.client.release_camera(camera_id, epoch)
        return True

    def metrics(self) -> dict[str, Any]:
        streams = {str(cid): s.runner.metrics() for cid, s in self.streams.items()}
        fps = sum(float(m.get("fps", 0) or 0) for m in streams.values())
        dropped = sum(int(m.get("frames_dropped", 0) or 0) for m in streams.values())
        states = {str(m.get("stream_state", "")) for m in streams.values()}
        out: dict[str, Any] = {
            "fps": round(fps, 2),
            "frames_dropped": dropped,
            "stream_state": ",".join(sorted(states)) if states else "idle",
            "cameras": ",".join(sorted(streams)),
            **system_metrics.sample(),
        }
        for cid, m in streams.items():
            out[f"camera_{cid}"] = {k: v for k, v in m.items() if not k.startswith("last_")}
        return out

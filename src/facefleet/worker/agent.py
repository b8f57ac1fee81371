"""The worker agent: register, heartbeat, take cameras, stream them, obey the control plane,
fence itself when it cannot confirm its leases, and leave cleanly.

    async with WorkerAgent(client, runner_factory, store=store) as agent:
        await agent.run()

Every loop runs supervised (``supervisor.supervise``): one that keeps failing ends ``run()``
with ``LoopFailed``. The heartbeat loop only talks and records what it heard; streams are
started and stopped by the reconciler, commands run in their own loop, sightings leave from
the outbox: nothing the heartbeat loop waits on can hold the next heartbeat up.

The reconciler is level-triggered: on every heartbeat (and whenever something changed) it
compares the streams running with the leases the book says this worker holds
(``leases.LeaseBook``) and starts what is missing, stops what is extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from facefleet.protocol.source_urls import mask_source_url
from facefleet.protocol.workers import PRESENCE_FRAME_ALLOWANCE, StreamStateName
from facefleet.worker import system_metrics
from facefleet.worker.command_handlers import execute
from facefleet.worker.frame_log import FrameLog
from facefleet.worker.leases import LeaseBook
from facefleet.worker.local_store import LocalStore
from facefleet.worker.pipeline.processor import CameraRunner
from facefleet.worker.pipeline.source import Frame
from facefleet.worker.supervisor import supervise
from facefleet.worker.timeouts import wait_set
from facefleet.worker.worker_client import (
    ApiError,
    Assignment,
    Command,
    ConnectionFailed,
    HeartbeatResult,
    Registration,
    RetryPolicy,
    StaleEpoch,
    StreamReport,
    WorkerClient,
    WorkerClientError,
    WorkerIdInUse,
)

log = logging.getLogger("facefleet.worker")

RunnerFactory = Callable[[Assignment], CameraRunner]

# How long a stream may go without a frame before its camera is given back as failing:
# from its start, and once it had streamed.
START_TIMEOUT = 15.0
STALL_TIMEOUT = 30.0
STREAM_STOP_GRACE = 5.0
COMMAND_TIMEOUT = 30.0
RECONCILE_PERIOD = 0.5
FENCE_CHECK = 0.05
MAX_CAMERA_METRICS = 48
# How long a camera request waits on the control plane for a camera to become free.
CAMERA_WAIT = 20.0


@dataclass
class Stream:
    assignment: Assignment
    runner: CameraRunner
    task: asyncio.Task[None]
    started_at: float = field(default_factory=time.monotonic)
    last_frames: int = 0
    last_frame_at: float = field(default_factory=time.monotonic)
    streamed: bool = False

    @property
    def key(self) -> tuple[int, int]:
        return self.assignment.camera_id, self.assignment.epoch


@dataclass
class AgentState:
    desired_state: str = "run"
    heartbeat_interval: float = 2.0
    jitter: float = 0.1
    lease_ttl: float = 6.0
    # Monotonic send time of the newest heartbeat (or registration) the control plane
    # confirmed: every lease is believed only until this plus the TTL minus the margin.
    last_confirmed: float = field(default_factory=time.monotonic)
    fenced: bool = False
    # The presence channel, when the control plane offers one: the worker believes its
    # leases only while bytes arrive on it, up to the grace minus a frame's allowance.
    presence_beat: float | None = None
    presence_grace: float | None = None
    presence_alive: float = field(default_factory=time.monotonic)
    presence_paused: bool = False


class IdentityRefused(Exception):
    """Another live process holds this WORKER_ID."""


class WorkerAgent:
    def __init__(
        self,
        client: WorkerClient,
        runner_factory: RunnerFactory,
        *,
        store: LocalStore | None = None,
        fence_margin: float = 1.0,
        shutdown_timeout: float = 10.0,
        start_timeout: float = START_TIMEOUT,
        stall_timeout: float = STALL_TIMEOUT,
        frame_log: FrameLog | None = None,
        services: dict[str, Callable[[], Awaitable[None]]] | None = None,
    ) -> None:
        self.client = client
        self.runner_factory = runner_factory
        self.store = store or LocalStore(":memory:")
        self.fence_margin = fence_margin
        self.shutdown_timeout = shutdown_timeout
        self.start_timeout = start_timeout
        self.stall_timeout = stall_timeout
        self.frame_log = frame_log
        self.services = dict(services or {})
        self.state = AgentState()
        self.book = LeaseBook()
        self.streams: dict[int, Stream] = {}
        self.stopping = asyncio.Event()
        self._changed = asyncio.Event()
        self._capacity_changed = asyncio.Event()
        self._assignments: dict[tuple[int, int], Assignment] = {}
        self._errors: dict[tuple[int, int], str] = {}
        self._commands: asyncio.Queue[Command] = asyncio.Queue()
        self._queued: set[int] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping_streams: dict[int, asyncio.Task[None]] = {}
        self._registered = False
        client.on_registered = self._on_registered

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.register()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._leave()

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
        self._registered = True
        log.info(
            "registered as %s (heartbeat %.1fs, lease TTL %.1fs, kept cameras %s)",
            reg.worker_id,
            reg.heartbeat_interval,
            reg.lease_ttl,
            sorted(self.book.desired()),
        )

    def _on_registered(self, reg: Registration) -> None:
        """Every registration, the SDK's own after a 404 included: a new session."""
        self.state.heartbeat_interval = reg.heartbeat_interval
        self.state.jitter = reg.heartbeat_jitter
        self.state.lease_ttl = reg.lease_ttl
        self.state.desired_state = reg.desired_state
        self.state.last_confirmed = time.monotonic()
        self.state.presence_beat = reg.presence_beat
        self.state.presence_grace = reg.presence_grace
        self.state.presence_alive = time.monotonic()
        self.state.fenced = False
        self.book.reset(reg.generation, [(le.camera_id, le.epoch) for le in reg.leases if le.valid])
        self._changed.set()

    async def run(self) -> None:
        """Run until stop() or a stop from the control plane; LoopFailed if a loop keeps
        failing."""
        if not self._registered:
            await self.register()
        loops: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "heartbeat": self._heartbeat_loop,
            "assignment": self._assignment_loop,
            "reconcile": self._reconcile_loop,
            "fence": self._fence_loop,
            "presence": self._presence_loop,
            "commands": self._command_loop,
            **{name: _coroutine(service) for name, service in self.services.items()},
        }
        tasks = [
            asyncio.create_task(supervise(name, loop), name=name) for name, loop in loops.items()
        ]
        stopped = asyncio.create_task(self.stopping.wait())
        try:
            done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopped and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in [stopped, *tasks]:
                task.cancel()
            await asyncio.gather(stopped, *tasks, return_exceptions=True)

    def stop(self) -> None:
        self.stopping.set()

    async def _leave(self) -> None:
        """Stop streams, signal shutdown (cameras freed at once), deregister."""
        deadline = time.monotonic() + self.shutdown_timeout
        await self._stop_all("shutting down", grace=self.shutdown_timeout / 2)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if not self._registered:
            return
        remaining = max(0.5, deadline - time.monotonic())
        try:
            async with asyncio.timeout(remaining):
                await self.client.signal_shutdown("worker stopping")
                await self.client.deregister()
            log.info("signalled shutdown and deregistered")
        except (TimeoutError, WorkerClientError) as exc:
            log.warning("could not deregister cleanly (%s); the lease TTL will free cameras", exc)

    # -- heartbeats and the fence ---------------------------------------------------------

    def _next_interval(self) -> float:
        spread = self.state.heartbeat_interval * self.state.jitter
        return max(0.05, self.state.heartbeat_interval + random.uniform(-spread, spread))

    def lease_confirmed(self, now: float | None = None) -> bool:
        """Whether the leases may still be believed valid (the fence has not fallen): a
        heartbeat confirmed them less than the TTL minus the margin ago, and the presence
        channel (if any) was heard less than its grace minus a frame's allowance ago."""
        now = time.monotonic() if now is None else now
        state = self.state
        if state.fenced or now - state.last_confirmed >= state.lease_ttl - self.fence_margin:
            return False
        if state.presence_grace is None or state.presence_paused:
            return True
        return now - state.presence_alive < state.presence_grace - PRESENCE_FRAME_ALLOWANCE

    async def _heartbeat_loop(self) -> None:
        while True:
            sent_at = time.monotonic()
            # A heartbeat not answered within one interval is superseded by the next one.
            budget = RetryPolicy(max_attempts=3, max_total=self.state.heartbeat_interval)
            try:
                result = await self.client.heartbeat(
                    self.metrics(), self.stream_reports(), retry=budget
                )
            except (ConnectionFailed, ApiError) as exc:
                log.warning("heartbeat failed: %s", exc)
            else:
                self._heard(result, sent_at)
            await asyncio.sleep(self._next_interval())

    def _heard(self, result: HeartbeatResult, sent_at: float) -> None:
        """Record what a heartbeat response says; acting on it is the reconciler's job."""
        self.state.last_confirmed = max(self.state.last_confirmed, sent_at)
        if self.state.fenced:
            log.info("control plane reachable again; leases confirmed")
            self.state.fenced = False
        self.state.heartbeat_interval = result.heartbeat_interval
        self.state.lease_ttl = result.lease_ttl
        self.book.apply_list(
            result.generation, [(le.camera_id, le.epoch) for le in result.leases if le.valid]
        )
        if result.desired_state != self.state.desired_state:
            log.info("control plane says %s", result.desired_state)
            self.state.desired_state = result.desired_state
        if result.gallery_version is not None:
            for stream in self.streams.values():
                notify = getattr(stream.runner.processor, "on_gallery_version", None)
                if notify is not None:
                    notify(result.gallery_version)
        for command in result.commands:
            if command.id not in self._queued:
                self._queued.add(command.id)
                self._commands.put_nowait(command)
        self._changed.set()
        if result.desired_state == "stop":
            self.stop()

    async def _presence_loop(self) -> None:
        """Keep the presence stream open; each byte on it says the control plane can still
        tell if this process dies."""
        while True:
            beat, grace = self.state.presence_beat, self.state.presence_grace
            if beat is None or grace is None:
                await asyncio.sleep(self.state.heartbeat_interval)
                continue
            try:
                async for chunk in self.client.presence(silence=2 * beat):
                    self.state.presence_alive = time.monotonic()
                    # A replica stopping on purpose says goodbye: its end is no loss, and
                    # until the next stream the heartbeats alone vouch for the leases.
                    self.state.presence_paused = chunk.endswith(b"!")
            except ApiError as exc:
                if exc.status == 404 and exc.error != "WorkerNotFound":
                    log.warning("the control plane has no presence channel: %s", exc)
                    self.state.presence_grace = self.state.presence_beat = None
                    continue
                log.warning("presence refused: %s", exc)
                await asyncio.sleep(min(beat, 0.5))
            except ConnectionFailed as exc:
                log.warning("presence lost: %s", exc)
                await asyncio.sleep(0.05)

    async def _fence_loop(self) -> None:
        """Stop every stream before the control plane can hand its camera on."""
        while True:
            self._fence_if_due()
            await asyncio.sleep(FENCE_CHECK)

    def _fence_if_due(self) -> None:
        if self.state.fenced or self.lease_confirmed() or not self.book.desired():
            return
        self.state.fenced = True
        now = time.monotonic()
        log.warning(
            "fenced: no confirmed heartbeat for %.1fs (lease TTL %.1fs), presence heard "
            "%.1fs ago; stopping all streams",
            now - self.state.last_confirmed,
            self.state.lease_ttl,
            now - self.state.presence_alive,
        )
        self._changed.set()

    # -- cameras --------------------------------------------------------------------------

    async def _assignment_loop(self) -> None:
        capacity = self.client.capacity
        while True:
            wait = self.state.heartbeat_interval
            if (
                self.state.desired_state == "run"
                and not self.state.fenced
                and len(self.book.desired()) < capacity
            ):
                wait = await self._request_camera()
            self._capacity_changed.clear()
            await wait_set(self._capacity_changed, wait)

    async def _request_camera(self) -> float:
        try:
            # A long poll: the control plane answers the moment a camera is free for us.
            result = await self.client.request_camera(wait=CAMERA_WAIT)
        except (ConnectionFailed, ApiError) as exc:
            log.warning("camera request failed: %s", exc)
            return self.state.heartbeat_interval
        for held in result.held:
            self._learn(result.generation, held)
        if result.assignment is None:
            if result.reason and "capacity" not in result.reason:
                return random.uniform(0.0, 0.2)  # waited all the time it could: ask again
            base = result.retry_after or self.state.heartbeat_interval
            return base * random.uniform(0.8, 1.2)
        self._learn(result.generation, result.assignment)
        return 0.0

    def _learn(self, generation: int | None, assignment: Assignment) -> None:
        self._assignments[assignment.camera_id, assignment.epoch] = assignment
        self.book.grant(generation, assignment.camera_id, assignment.epoch)
        self._changed.set()

    async def _reconcile_loop(self) -> None:
        while True:
            await self.reconcile()
            self._changed.clear()
            await wait_set(self._changed, RECONCILE_PERIOD)

    async def reconcile(self) -> None:
        """Make the running streams match the leases held: one pass."""
        self._fence_if_due()
        desired: dict[int, int] = {}
        if not self.state.fenced and self.lease_confirmed() and not self.stopping.is_set():
            desired = self.book.desired()
        for camera_id, stream in list(self.streams.items()):
            if desired.get(camera_id) != stream.assignment.epoch:
                reason = "fenced" if self.state.fenced else "lease no longer held"
                self._stop_in_background(camera_id, reason)
            else:
                self._check_health(stream)
        missing = {
            c: e
            for c, e in desired.items()
            if c not in self.streams and c not in self._stopping_streams
        }
        if missing and any((c, e) not in self._assignments for c, e in missing.items()):
            await self._fetch_assignments()
        for camera_id, epoch in missing.items():
            assignment = self._assignments.get((camera_id, epoch))
            if assignment is not None and self.book.desired().get(camera_id) == epoch:
                self._start(assignment)

    async def _fetch_assignments(self) -> None:
        try:
            async with asyncio.timeout(self.state.heartbeat_interval * 2):
                current = await self.client.current_cameras()
        except (TimeoutError, WorkerClientError) as exc:
            log.warning("could not fetch held cameras: %s", exc)
            return
        for assignment in current.assignments:
            self._assignments[assignment.camera_id, assignment.epoch] = assignment
            self.book.grant(current.generation, assignment.camera_id, assignment.epoch)

    def _start(self, assignment: Assignment) -> None:
        key = (assignment.camera_id, assignment.epoch)
        try:
            runner = self.runner_factory(assignment)
        except Exception as exc:
            # An unsupported URL, say: no worker can open it. Give the camera back, failing.
            log.error(
                "camera %d (%s) cannot be opened: %s",
                assignment.camera_id,
                mask_source_url(assignment.source_url),
                exc,
            )
            self._give_back(assignment, f"{type(exc).__name__}: {exc}")
            return
        runner.guard = self._guard(assignment)
        if self.frame_log is not None:
            frame_log, camera_id, epoch = self.frame_log, assignment.camera_id, assignment.epoch
            runner.processed = lambda _, started: frame_log.record(started, camera_id, epoch)
        task = asyncio.create_task(runner.run(), name=f"camera {assignment.camera_id}")
        self.streams[assignment.camera_id] = Stream(assignment, runner, task)
        self._errors.pop(key, None)
        log.info(
            "streaming camera %d (%s) at epoch %d",
            assignment.camera_id,
            assignment.name,
            assignment.epoch,
        )

    def _guard(self, assignment: Assignment) -> Callable[[Frame], bool]:
        camera_id, epoch = assignment.camera_id, assignment.epoch

        def allowed(frame: Frame) -> bool:
            # Checked right before each frame: the fence may fall between two of them.
            return self.lease_confirmed() and self.book.desired().get(camera_id) == epoch

        return allowed

    def _check_health(self, stream: Stream) -> None:
        """A stream that ended, or gets no frames for too long, gives its camera back."""
        now = time.monotonic()
        stats = stream.runner.source.stats()
        if stats["frames_read"] != stream.last_frames:
            stream.last_frames = stats["frames_read"]
            stream.last_frame_at = now
            stream.streamed = True
        error: str | None = None
        if stream.task.done():
            error = stats["last_error"] or "the stream ended"
        elif not stream.streamed and now - stream.started_at > self.start_timeout:
            error = stats["last_error"] or f"no frame within {self.start_timeout:.0f}s"
        elif stream.streamed and now - stream.last_frame_at > self.stall_timeout:
            error = stats["last_error"] or f"no frame for {self.stall_timeout:.0f}s"
        if error is None:
            return
        ended = stream.task.done() and stats["stream_state"] == "ended"
        log.warning("camera %d: %s; giving it back", stream.assignment.camera_id, error)
        self._stop_in_background(stream.assignment.camera_id, error)
        self._give_back(stream.assignment, None if ended else error)

    def _give_back(self, assignment: Assignment, error: str | None) -> None:
        """Release a lease this worker cannot (or need not) stream, never to take it up
        again at that epoch; a failure makes the camera failing for a while."""
        self.book.give_up(assignment.camera_id, assignment.epoch)
        if error is not None:
            self._errors[assignment.camera_id, assignment.epoch] = error
        self._spawn(self._release(assignment.camera_id, assignment.epoch, error))
        self._capacity_changed.set()

    async def _release(self, camera_id: int, epoch: int, error: str | None) -> None:
        delay = 0.5
        while True:
            try:
                await self.client.release_camera(camera_id, epoch, error=error)
                return
            except StaleEpoch:
                return  # not ours any more: nothing to release
            except (ConnectionFailed, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status < 500 and exc.status != 429:
                    log.warning("camera %d: release refused: %s", camera_id, exc)
                    return
                log.warning("camera %d: release failed, retrying: %s", camera_id, exc)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(10.0, delay * 2)

    def _stop_in_background(self, camera_id: int, reason: str) -> None:
        stream = self.streams.pop(camera_id, None)
        if stream is None:
            return
        task = asyncio.create_task(self._stop(stream, reason, STREAM_STOP_GRACE))
        self._stopping_streams[camera_id] = task
        task.add_done_callback(lambda _: self._stopping_streams.pop(camera_id, None))
        self._capacity_changed.set()

    async def _stop(self, stream: Stream, reason: str, grace: float) -> None:
        log.info("stopping camera %d: %s", stream.assignment.camera_id, reason)
        await stream.runner.stop(grace)
        stream.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await stream.task

    async def stop_stream(self, camera_id: int, reason: str, grace: float = 5.0) -> None:
        stream = self.streams.pop(camera_id, None)
        if stream is not None:
            await self._stop(stream, reason, grace)
            self._capacity_changed.set()
        pending = self._stopping_streams.get(camera_id)
        if pending is not None:
            await pending

    def stop_stale_stream(self, camera_id: int, epoch: int) -> None:
        """The control plane refused this epoch: never stream it again."""
        self.book.give_up(camera_id, epoch)
        stream = self.streams.get(camera_id)
        if stream is not None and stream.assignment.epoch == epoch:
            self._stop_in_background(camera_id, "stale epoch")
        self._changed.set()

    async def _stop_all(self, reason: str, grace: float = 5.0) -> None:
        streams, self.streams = list(self.streams.values()), {}
        await asyncio.gather(
            *(self._stop(s, reason, grace) for s in streams),
            *self._stopping_streams.values(),
        )

    async def release(self, camera_id: int) -> bool:
        """Stop a camera and give it back (the release_camera command)."""
        stream = self.streams.get(camera_id)
        if stream is None:
            return False
        self.book.give_up(camera_id, stream.assignment.epoch)
        await self.stop_stream(camera_id, "release requested")
        await self._release(camera_id, stream.assignment.epoch, None)
        return True

    async def restart(self, camera_id: int) -> bool:
        """Stop a camera's stream and start it again (the restart_stream command)."""
        stream = self.streams.get(camera_id)
        if stream is None:
            return False
        await self.stop_stream(camera_id, "restart requested")
        self._changed.set()
        return True

    # -- commands -------------------------------------------------------------------------

    async def _command_loop(self) -> None:
        while True:
            command = await self._commands.get()
            try:
                await self._run_command(command)
            finally:
                self._queued.discard(command.id)

    async def _run_command(self, command: Command) -> None:
        """At least once from the control plane, once here: a command handed out again is
        acknowledged again with the result it had, never executed twice."""
        record = self.store.command(command.id)
        if record is None:
            if command.expires_at is not None and command.expires_at < time.time():
                return  # expired: the control plane no longer wants it
            try:
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    status, result = await execute(self, command)
            except TimeoutError:
                status, result = "failed", {"error": f"timed out after {COMMAND_TIMEOUT:.0f}s"}
            self.store.executed(command.id, status, result)
        else:
            # Executed before: its acknowledgement was lost, or this process restarted.
            status, result = ("acked" if record.status == "acked" else "failed"), record.result
        try:
            await self.client.ack_command(command.id, status, result)
        except ApiError as exc:
            if exc.status == 409:
                self.store.acknowledged(command.id)  # expired meanwhile: nothing to add
            log.warning("could not acknowledge command %d: %s", command.id, exc)
            return
        except WorkerClientError as exc:
            log.warning("could not acknowledge command %d: %s", command.id, exc)
            return
        self.store.acknowledged(command.id)

    # -- reports --------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stream_reports(self) -> list[StreamReport]:
        reports = []
        for camera_id, stream in self.streams.items():
            m = stream.runner.metrics()
            source_state = str(m.get("stream_state", ""))
            state: StreamStateName = "streaming"
            if not stream.streamed:
                state = "starting"
            elif source_state != "streaming":
                state = "stalled"
            reports.append(
                StreamReport(
                    camera_id=camera_id,
                    epoch=stream.assignment.epoch,
                    state=state,
                    frames_processed=int(m.get("frames_processed", 0) or 0),
                    frames_dropped=int(m.get("frames_dropped", 0) or 0),
                    fps=float(m.get("fps", 0) or 0),
                    last_error=(str(m.get("last_error") or "") or None),
                )
            )
        return reports

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
            "sightings_waiting": self.store.waiting(),
            **system_metrics.sample(),
        }
        # Per-camera detail for the first cameras only: a heartbeat carries at most 64 metrics
        # (every stream's state travels in its stream report anyway).
        for cid, m in list(streams.items())[:MAX_CAMERA_METRICS]:
            out[f"camera_{cid}"] = {k: v for k, v in m.items() if not k.startswith("last_")}
        return out


def _coroutine(service: Callable[[], Awaitable[None]]) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:
        await service()

    return run

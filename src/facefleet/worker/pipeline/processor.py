"""What the worker does with frames, and the loop that feeds a camera's frames to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from facefleet.worker.pipeline.source import Frame, FrameSource, RateMeter
from facefleet.worker.timeouts import wait_set

logger = logging.getLogger(__name__)

MetricValue = float | int | str


class FrameProcessor(Protocol):
    """Consumes frames on the event loop; CPU-heavy work belongs in a thread of its own."""

    async def process(self, frame: Frame) -> None: ...

    def metrics(self) -> dict[str, MetricValue]: ...


Guard = Callable[[Frame], bool]
Processed = Callable[[Frame, float], None]


class DeferredProcessor(FrameProcessor, Protocol):
    """A processor whose ``process()`` only queues the frame: it asks ``guard`` right before
    it works on a frame, and tells ``processed`` when it is done."""

    def use_hooks(self, guard: Guard | None, processed: Processed | None) -> None: ...


class MeasuringProcessor:
    """Counts frames and measures the processing rate; runs until the face pipeline plugs in."""

    def __init__(self) -> None:
        self._frames = 0
        self._rate = RateMeter()
        self._last_latency_ms = 0.0

    async def process(self, frame: Frame) -> None:
        now = time.monotonic()
        self._frames += 1
        self._rate.tick(now)
        self._last_latency_ms = (now - frame.captured_at) * 1000

    def metrics(self) -> dict[str, MetricValue]:
        return {
            "frames_processed": self._frames,
            "fps": round(self._rate.rate(time.monotonic()), 2),
            "latency_ms": round(self._last_latency_ms, 1),
        }


class CameraRunner:
    """Feeds the latest frame of a source to a processor at most ``target_fps`` times a second.

    Frames that arrive in between are never processed; the source counts them as dropped.
    When processing a frame outlasts the interval, the slots it overran are counted as
    ``frames_late``: the camera ran below ``target_fps``.
    ``run()`` starts the source if needed and returns when the source ends or ``stop()`` is
    called. A processor error is logged and counted, and the next frame is processed.
    """

    def __init__(
        self,
        source: FrameSource,
        processor: FrameProcessor,
        target_fps: float | None,
        *,
        stop_source: bool = True,
    ) -> None:
        if target_fps is not None and target_fps <= 0:
            raise ValueError("target_fps must be positive (or None for no limit)")
        self.source = source
        self.processor = processor
        self.target_fps = target_fps
        self._stop_source = stop_source
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._errors = 0
        self._last_error = ""
        # Asked before each frame: False skips it (the agent's lease check, so no frame is
        # processed once the worker can no longer be sure its lease is valid).
        self.guard: Guard | None = None
        # Told after each frame with the (wall) time its processing started.
        self.processed: Processed | None = None
        self._frames_refused = 0
        # Frames due at target_fps that were never taken because processing ran late.
        self._slots_missed = 0

    def metrics(self) -> dict[str, MetricValue]:
        stats = self.source.stats()
        merged: dict[str, MetricValue] = {
            "stream_state": stats["stream_state"],
            "frames_read": stats["frames_read"],
            "frames_dropped": stats["frames_dropped"],
            "fps_in": stats["fps_in"],
            "reconnects": stats["reconnects"],
            "last_error": stats["last_error"] or "",
            "target_fps": self.target_fps or 0,
            "process_errors": self._errors,
            "last_process_error": self._last_error,
            "frames_refused": self._frames_refused,
            "frames_late": self._slots_missed,
        }
        merged.update(self.processor.metrics())
        return merged

    async def run(self) -> None:
        if self._task is not None:
            raise RuntimeError("a CameraRunner runs only once")
        self._task = asyncio.current_task()
        if not self.source.started and not self._stopping.is_set():
            self.source.start()
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.target_fps if self.target_fps else 0.0
        # A processor that works on frames later checks them itself, when it does.
        use_hooks = getattr(self.processor, "use_hooks", None)
        if use_hooks is not None:
            use_hooks(self.guard, self.processed)
        processed = None if use_hooks is not None else self.processed
        stop_wait = asyncio.create_task(self._stopping.wait())
        frame_wait: asyncio.Task[Frame | None] | None = None
        last_seq = 0
        next_due = loop.time()
        try:
            while not self._stopping.is_set():
                delay = next_due - loop.time()
                if delay > 0:
                    await asyncio.wait({stop_wait}, timeout=delay)
                    continue
                frame_wait = asyncio.create_task(self.source.wait_frame(last_seq))
                await asyncio.wait({stop_wait, frame_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not frame_wait.done():
                    break
                frame = frame_wait.result()
                if frame is None:  # the source ended or was stopped
                    break
                last_seq = frame.seq
                if interval:
                    # At most one frame per interval, and no catch-up burst after a gap.
                    next_due = max(next_due + interval, loop.time())
                if self.guard is not None and not self.guard(frame):
                    self._frames_refused += 1
                    continue
                started = time.time()
                await self._process(frame)
                if processed is not None:
                    processed(frame, started)
                if interval:
                    # Slots that passed while this frame was processed are lost: counted.
                    self._slots_missed += max(0, int((loop.time() - next_due) / interval))
        finally:
            for waiter in (stop_wait, frame_wait):
                if waiter is not None and not waiter.done():
                    waiter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waiter
            self._done.set()

    async def _process(self, frame: Frame) -> None:
        try:
            await self.processor.process(frame)
        except Exception as exc:
            self._errors += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("frame processor failed on frame %d", frame.seq)

    # The timeout is split between phases (current frame, cancel, source threads), which a
    # caller's asyncio.timeout() could not do.
    async def stop(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109
        """Stop within ``timeout`` seconds: let the current frame finish, else cancel it.

        Returns True if the run loop and the source's capture threads have all exited.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        self._stopping.set()
        finished = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            # Half the budget for the frame in progress, the rest for cancelling it.
            grace = max(0.0, (deadline - loop.time()) / 2)
            if not await wait_set(self._done, grace):
                task.cancel()
                await wait_set(self._done, max(0.0, deadline - loop.time()))
            finished = self._done.is_set()
        if self._stop_source:
            remaining = max(0.0, deadline - loop.time())
            finished = await asyncio.to_thread(self.source.stop, remaining) and finished
        return finished

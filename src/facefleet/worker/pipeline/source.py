"""Video capture for the worker: camera URLs opened with OpenCV, read by a background thread.

``FrameSource`` keeps only the newest frame, so a slow consumer always processes what the
camera shows now instead of a growing backlog. It reconnects on its own (jittered
exponential backoff) and treats a stream that stops delivering frames as dead.

Thread safety: a ``cv2.VideoCapture`` is only ever touched by the thread that opened it.
Releasing it from another thread while ``read()`` is blocked does not unblock the read and
crashes the process (use after free inside OpenCV), so a capture stuck in a read is
abandoned instead: its thread releases it when the FFmpeg read timeout fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, TypedDict

import cv2
import numpy as np
import numpy.typing as npt

from facefleet.protocol.source_urls import SourceSpec, mask_source_url, parse_source_url
from facefleet.worker.timeouts import wait_set

logger = logging.getLogger(__name__)

FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
# FFmpeg's decoder threads per stream (OpenCV's default: one per core). A worker decodes
# many streams at once, its parallelism is theirs; a stream's own threads only add
# hand-offs: a 640x360 H.264 stream took 40% more CPU with them in a six-camera worker
# (docs/performance.md).
DECODE_THREADS = 1
DEFAULT_FILE_FPS = 25.0
FPS_WINDOW_SECONDS = 2.0

_env_lock = threading.Lock()


class StreamState(StrEnum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    STOPPED = "stopped"


# eq=False: the image is an array, and field-wise == on arrays has no single truth value.
@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    seq: int
    image: npt.NDArray[np.uint8]
    captured_at: float
    position_ms: float | None = None


class SourceStats(TypedDict):
    stream_state: str
    frames_read: int
    frames_dropped: int
    fps_in: float
    reconnects: int
    last_error: str | None
    width: int | None
    height: int | None


class RateMeter:
    """Events per second over a sliding window; not thread-safe, callers hold their own lock."""

    def __init__(self, window: float = FPS_WINDOW_SECONDS) -> None:
        self._window = window
        self._events: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._events.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        if len(self._events) < 2:
            return 0.0
        # Measured up to now rather than the last event, so a stream that stops decays to 0.
        span = max(now, self._events[-1]) - self._events[0]
        return (len(self._events) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._events and self._events[0] < now - self._window:
            self._events.popleft()


def _with_default_ffmpeg_option(options: str, key: str, value: str) -> str:
    """Add ``key;value`` to an FFmpeg options string unless the key is already set."""
    pairs = [pair for pair in options.split("|") if pair]
    if any(pair.split(";", 1)[0] == key for pair in pairs):
        return options
    pairs.append(f"{key};{value}")
    return "|".join(pairs)


def ensure_rtsp_over_tcp() -> None:
    """Ask OpenCV's FFmpeg backend for RTSP over TCP, keeping any other configured options.

    The variable is process-global and read at every open, so it is only written when the
    value changes; an rtsp_transport the operator set explicitly is left alone.
    """
    with _env_lock:
        current = os.environ.get(FFMPEG_OPTIONS_ENV, "")
        wanted = _with_default_ffmpeg_option(current, "rtsp_transport", "tcp")
        if wanted != current:
            os.environ[FFMPEG_OPTIONS_ENV] = wanted


def open_capture(
    url: str, *, open_timeout: float = 10.0, read_timeout: float = 10.0
) -> cv2.VideoCapture:
    """Open a camera URL with the right OpenCV backend; check ``isOpened()`` on the result.

    Network streams and files go through FFmpeg with open and read timeouts, so a dead
    stream makes ``read()`` fail instead of blocking forever. Devices use V4L2 on Linux.
    """
    spec = parse_source_url(url)
    if spec.kind == "device":
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        # No timeout params: backends that do not consume a param refuse to open.
        # Two calls because the index and path overloads differ.
        if isinstance(spec.target, int):
            return cv2.VideoCapture(spec.target, api)
        return cv2.VideoCapture(spec.target, api)
    target = str(spec.target)
    if spec.kind == "rtsp":
        ensure_rtsp_over_tcp()
    if not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
        return cv2.VideoCapture(target, cv2.CAP_ANY)
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        _milliseconds(open_timeout),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        _milliseconds(read_timeout),
        cv2.CAP_PROP_N_THREADS,
        DECODE_THREADS,
    ]
    return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _as_bgr(image: cv2.typing.MatLike) -> npt.NDArray[np.uint8]:
    """Normalise what a backend returns to a (h, w, 3) uint8 BGR array."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"unsupported frame dtype {array.dtype}")
    if array.ndim == 2:
        array = np.asarray(cv2.cvtColor(array, cv2.COLOR_GRAY2BGR))
    elif array.ndim == 3 and array.shape[2] == 4:
        array = np.asarray(cv2.cvtColor(array, cv2.COLOR_BGRA2BGR))
    elif array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"unsupported frame shape {array.shape}")
    return array.astype(np.uint8, copy=False)


class _Session:
    """One capture from open to release, run by its own thread."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.started_at = time.monotonic()
        self.last_frame_at = self.started_at
        self.opened = False
        self.frames = 0
        self.outcome: Literal["failed", "ended", "cancelled"] | None = None
        self.error: str | None = None
        self.thread: threading.Thread | None = None


class FrameSource:
    """Reads a camera continuously in a daemon thread and keeps only the latest frame.

    Frames that are overwritten before anyone took them count as dropped. Files are paced
    at their native frame rate and loop when ``loop_files`` is true, so they behave like a
    live camera. A stream that delivers nothing for ``stall_after`` seconds is abandoned and
    reopened; failed opens and dropped streams are retried with jittered exponential backoff.
    """

    def __init__(
        self,
        url: str,
        *,
        loop_files: bool = True,
        open_timeout: float = 10.0,
        read_timeout: float = 10.0,
        stall_after: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        if min(open_timeout, read_timeout, stall_after) <= 0:
            raise ValueError("timeouts must be positive")
        if backoff_initial < 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 <= backoff_initial <= backoff_max")
        self._url = url
        self._is_file = parse_source_url(url).kind == "file"
        self._loop_files = loop_files
        self._open_timeout = open_timeout
        self._read_timeout = read_timeout
        self._stall_after = stall_after
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max

        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sessions: list[_Session] = []
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

        self._state = StreamState.CONNECTING
        self._slot: Frame | None = None
        self._slot_taken = False
        self._seq = 0
        self._frames_read = 0
        self._frames_dropped = 0
        self._reconnects = 0
        self._last_error: str | None = None
        self._size: tuple[int, int] | None = None
        self._rate = RateMeter()

    def __repr__(self) -> str:
        return f"FrameSource({mask_source_url(self._url)!r}, state={self._state.value})"

    def __enter__(self) -> FrameSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._url

    @property
    def state(self) -> StreamState:
        with self._cond:
            return self._state

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None or self._stop.is_set():
            raise RuntimeError("a FrameSource can be started only once")
        self._thread = threading.Thread(
            target=self._supervise, name=f"frame-source {mask_source_url(self._url)}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop reading; return within ``timeout`` seconds whatever the capture is doing.

        Returns True if every capture thread has exited. A thread blocked inside a read
        keeps running (it is a daemon) until the read timeout, then releases its capture.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        self._stop.set()
        with self._cond:
            self._set_state(StreamState.STOPPED)
            for session in self._sessions:
                session.cancel.set()
            threads = [s.thread for s in self._sessions if s.thread is not None]
            self._cond.notify_all()
            self._wake_async_waiters()
        if self._thread is not None:
            threads.insert(0, self._thread)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def latest(self, after_seq: int = 0) -> Frame | None:
        """The newest frame if its seq is above ``after_seq``, else None; never blocks."""
        with self._cond:
            return self._take(after_seq)

    # A timeout parameter rather than asyncio.timeout(): running out of time is a normal
    # outcome here (None), not an exception.
    async def wait_frame(
        self,
        after_seq: int = 0,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Frame | None:
        """Await a frame newer than ``after_seq``; None on timeout or once the source is done."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            event = asyncio.Event()
            waiter = (loop, event)
            with self._cond:
                frame = self._take(after_seq)
                if frame is not None:
                    return frame
                if self._state in (StreamState.ENDED, StreamState.STOPPED):
                    return None
                self._async_waiters.append(waiter)
            try:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return None
                if not await wait_set(event, remaining):
                    return None
            finally:
                with self._cond:
                    if waiter in self._async_waiters:
                        self._async_waiters.remove(waiter)

    def stats(self) -> SourceStats:
        with self._cond:
            return {
                "stream_state": self._state.value,
                "frames_read": self._frames_read,
                "frames_dropped": self._frames_dropped,
                "fps_in": round(self._rate.rate(time.monotonic()), 2),
                "reconnects": self._reconnects,
                "last_error": self._last_error,
                "width": None if self._size is None else self._size[0],
                "height": None if self._size is None else self._size[1],
            }

    # -- internals; methods named *_locked expect self._cond to be held ----------------------

    def _take(self, after_seq: int) -> Frame | None:
        frame = self._slot
        if frame is None or frame.seq <= after_seq:
            return None
        self._slot_taken = True
        return frame

    def _set_state(self, state: StreamState) -> None:
        # Stopped is final; ended only gives way to stopped.
        if self._state is StreamState.STOPPED:
            return
        if self._state is StreamState.ENDED and state is not StreamState.STOPPED:
            return
        self._state = state

    def _wake_async_waiters(self) -> None:
        for loop, event in self._async_waiters:
            # A closed loop raises RuntimeError; its waiter is gone with it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        self._async_waiters.clear()

    def _backoff(self, attempt: int) -> float:
        base = min(self._backoff_max, self._backoff_initial * 2.0**attempt)
        # Jitter spreads the reconnects of many cameras that failed together.
        return base / 2 + random.uniform(0, base / 2)

    def _supervise(self) -> None:
        attempt = 0
        first = True
        while not self._stop.is_set():
            session = _Session()
            with self._cond:
                if not first:
                    self._reconnects += 1
                    self._set_state(StreamState.RECONNECTING)
                self._sessions = [s for s in self._sessions if s.thread and s.thread.is_alive()]
                self._sessions.append(session)
            first = False
            session.thread = threading.Thread(
                target=self._read_session,
                args=(session,),
                name=f"frame-reader {mask_source_url(self._url)}",
                daemon=True,
            )
            session.thread.start()
            result = self._watch(session)
            if result != "retry":
                return
            logger.warning("camera %s: %s", mask_source_url(self._url), self.stats()["last_error"])
            if session.frames:
                attempt = 0
            delay = self._backoff(attempt)
            attempt += 1
            if self._stop.wait(delay):
                return

    def _watch(self, session: _Session) -> Literal["retry", "ended", "stopped"]:
        with self._cond:
            while True:
                if self._stop.is_set():
                    session.cancel.set()
                    return "stopped"
                if session.outcome == "ended":
                    self._set_state(StreamState.ENDED)
                    self._wake_async_waiters()
                    return "ended"
                if session.outcome is not None:
                    self._last_error = session.error or "capture ended"
                    self._set_state(StreamState.RECONNECTING)
                    return "retry"
                now = time.monotonic()
                if session.opened:
                    deadline = session.last_frame_at + self._stall_after
                else:
                    deadline = session.started_at + self._open_timeout + self._stall_after
                if now >= deadline:
                    # The reader may be stuck in a native call: abandon it, never release
                    # its capture from here (see the module docstring).
                    session.cancel.set()
                    self._last_error = (
                        f"stalled: no frame for {self._stall_after:g}s"
                        if session.opened
                        else "stalled: opening did not return"
                    )
                    self._set_state(StreamState.STALLED)
                    return "retry"
                self._cond.wait(deadline - now)

    def _read_session(self, session: _Session) -> None:
        cap: cv2.VideoCapture | None = None
        try:
            cap = open_capture(
                self._url, open_timeout=self._open_timeout, read_timeout=self._read_timeout
            )
            if not cap.isOpened():
                self._finish(session, "failed", f"cannot open {mask_source_url(self._url)}")
                return
            with self._cond:
                session.opened = True
                session.last_frame_at = time.monotonic()
                self._cond.notify_all()  # the watchdog's deadline is now the stall one
            self._read_loop(session, cap)
        except Exception as exc:
            self._finish(session, "failed", f"{type(exc).__name__}: {exc}")
        finally:
            if cap is not None:
                cap.release()
            self._finish(session, "cancelled", None)

    def _read_loop(self, session: _Session, cap: cv2.VideoCapture) -> None:
        interval = 0.0
        if self._is_file:
            fps = cap.get(cv2.CAP_PROP_FPS)
            if not math.isfinite(fps) or not 0 < fps <= 1000:
                fps = DEFAULT_FILE_FPS
            interval = 1.0 / fps
        next_due = time.monotonic()
        frames_this_pass = 0
        while not session.cancel.is_set():
            ok, image = cap.read()
            if session.cancel.is_set():
                return
            if not ok or image is None:
                if not self._is_file:
                    self._finish(session, "failed", "stream read failed (dropped or timed out)")
                elif not self._loop_files:
                    self._finish(session, "ended", None)
                elif frames_this_pass == 0:
                    self._finish(session, "failed", "file has no readable frames")
                elif not cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    self._finish(session, "failed", "cannot rewind the file to loop it")
                else:
                    frames_this_pass = 0
                    continue
                return
            frames_this_pass += 1
            position = cap.get(cv2.CAP_PROP_POS_MSEC)
            self._publish(session, _as_bgr(image), position)
            if interval:
                next_due += interval
                now = time.monotonic()
                if next_due < now - interval:
                    next_due = now  # fell behind (slow disk, paused VM): no catch-up burst
                elif next_due > now and session.cancel.wait(next_due - now):
                    return

    def _publish(self, session: _Session, image: npt.NDArray[np.uint8], position: float) -> None:
        now = time.monotonic()
        with self._cond:
            if session.cancel.is_set():
                return
            self._seq += 1
            if self._slot is not None and not self._slot_taken:
                self._frames_dropped += 1
            self._slot = Frame(
                seq=self._seq,
                image=image,
                captured_at=now,
                position_ms=position if math.isfinite(position) and position >= 0 else None,
            )
            self._slot_taken = False
            self._frames_read += 1
            self._rate.tick(now)
            self._size = (image.shape[1], image.shape[0])
            session.frames += 1
            session.last_frame_at = now
            self._set_state(StreamState.STREAMING)
            # No notify: the watchdog, the only one waiting on the condition, would only
            # find its deadline later; it wakes at the old one and waits again.
            self._wake_async_waiters()

    def _finish(
        self,
        session: _Session,
        outcome: Literal["failed", "ended", "cancelled"],
        error: str | None,
    ) -> None:
        with self._cond:
            if session.outcome is None:
                session.outcome = outcome
                session.error = error
            self._cond.notify_all()


__all__ = [
    "FFMPEG_OPTIONS_ENV",
    "Frame",
    "FrameSource",
    "RateMeter",
    "SourceSpec",
    "SourceStats",
    "StreamState",
    "ensure_rtsp_over_tcp",
    "open_capture",
    "parse_source_url",
]

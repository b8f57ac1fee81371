"""Video capture against real inputs: generated files, a local MJPEG server, closed ports."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from facefleet.demo import make_demo_video
from facefleet.protocol.source_urls import mask_source_url
from facefleet.worker.pipeline.processor import CameraRunner, MeasuringProcessor
from facefleet.worker.pipeline.source import (
    FFMPEG_OPTIONS_ENV,
    Frame,
    FrameSource,
    SourceSpec,
    StreamState,
    parse_source_url,
)
from tests.fixtures.waiting import until

pytestmark = pytest.mark.timeout(30)

VIDEO_FPS = 20
VIDEO_FRAMES = 20


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second at 20 fps: short enough to see it end and loop within a test."""
    path = tmp_path_factory.mktemp("video") / "demo.avi"
    return make_demo_video(path, seconds=1, fps=VIDEO_FPS, size=(160, 120))


@pytest.fixture(scope="module")
def fast_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "fast.avi"
    return make_demo_video(path, seconds=2, fps=50, size=(96, 64))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- a local MJPEG camera -------------------------------------------------------------------


class MjpegServer:
    """``multipart/x-mixed-replace`` JPEG stream on 127.0.0.1, like a cheap IP camera."""

    def __init__(self, port: int = 0, fps: float = 25) -> None:
        self.fps = fps
        self.frozen = threading.Event()
        self.closed = threading.Event()
        self.jpegs = [self._jpeg(shade) for shade in (40, 120, 200)]
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                index = 0
                with contextlib.suppress(OSError):
                    while not server.closed.is_set():
                        if server.frozen.is_set():  # connection open, nothing sent
                            server.closed.wait(0.05)
                            continue
                        jpeg = server.jpegs[index % len(server.jpegs)]
                        index += 1
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                            + jpeg
                            + b"\r\n"
                        )
                        self.wfile.flush()
                        server.closed.wait(1 / server.fps)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._listening = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    @staticmethod
    def _jpeg(shade: int) -> bytes:
        image = np.full((120, 160, 3), shade, dtype=np.uint8)
        cv2.circle(image, (80, 60), 30, (0, 0, 255), -1)
        ok, data = cv2.imencode(".jpg", image)
        assert ok
        return data.tobytes()

    def freeze(self) -> None:
        """Stop sending and stop accepting, but keep open connections open: a hung camera."""
        self.frozen.set()
        self._stop_listening()

    def close(self) -> None:
        self.closed.set()
        self._stop_listening()

    def _stop_listening(self) -> None:
        if self._listening:
            self._listening = False
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(2)


@pytest.fixture
def mjpeg() -> Iterator[MjpegServer]:
    server = MjpegServer()
    yield server
    server.close()


# -- URL mapping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "spec"),
    [
        ("rtsp://cam.local:554/stream1", SourceSpec("rtsp", "rtsp://cam.local:554/stream1")),
        ("RTSPS://cam/x", SourceSpec("rtsp", "RTSPS://cam/x")),
        ("http://cam/video.mjpg", SourceSpec("http", "http://cam/video.mjpg")),
        ("https://cdn/live.m3u8", SourceSpec("http", "https://cdn/live.m3u8")),
        ("file:///var/videos/a%20b.avi", SourceSpec("file", "/var/videos/a b.avi")),
        ("file://localhost/tmp/a.avi", SourceSpec("file", "/tmp/a.avi")),
        ("/tmp/a.avi", SourceSpec("file", "/tmp/a.avi")),
        ("videos/a.avi", SourceSpec("file", "videos/a.avi")),
        ("device://0", SourceSpec("device", 0)),
        ("device://12", SourceSpec("device", 12)),
        ("/dev/video2", SourceSpec("device", "/dev/video2")),
    ],
)
def test_parse_source_url(url: str, spec: SourceSpec) -> None:
    assert parse_source_url(url) == spec


@pytest.mark.parametrize(
    "url", ["ftp://cam/x", "device://front", "file://otherhost/x.avi", "rtmp://cam/live"]
)
def test_unsupported_urls_are_refused_up_front(url: str) -> None:
    with pytest.raises(ValueError):
        parse_source_url(url)
    with pytest.raises(ValueError):
        FrameSource(url)


def test_credentials_stay_out_of_reprs() -> None:
    url = "rtsp://admin:s3cret@10.0.0.5:554/live"
    assert mask_source_url(url) == "rtsp://***@10.0.0.5:554/live"
    assert "s3cret" not in repr(FrameSource(url))


# -- files ----------------------------------------------------------------------------------


async def test_file_is_paced_at_native_fps_and_loops(video: Path) -> None:
    source = FrameSource(video.as_uri(), loop_files=True)
    source.start()
    try:
        frames: list[Frame] = []
        started = time.monotonic()
        while time.monotonic() - started < 1.6:
            frame = await source.wait_frame(frames[-1].seq if frames else 0, timeout=2)
            assert frame is not None
            frames.append(frame)
        stats = source.stats()
    finally:
        assert await asyncio.to_thread(source.stop, 2)

    # 1.6 s at 20 fps: about 32 frames, not the few hundred an unpaced decoder would give.
    assert 24 <= len(frames) <= 40
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})
    assert 15 <= stats["fps_in"] <= 25
    assert (stats["width"], stats["height"]) == (160, 120)
    assert stats["stream_state"] == "streaming"
    assert frames[0].image.shape == (120, 160, 3) and frames[0].image.dtype == np.uint8
    positions = [f.position_ms for f in frames]
    assert all(p is not None for p in positions)
    # It looped: the position went back to the start after the last frame.
    assert any(b is not None and a is not None and b < a for a, b in itertools.pairwise(positions))
    assert source.state is StreamState.STOPPED


async def test_file_without_loop_ends(video: Path) -> None:
    source = FrameSource(str(video), loop_files=False)
    source.start()
    try:
        await until(lambda: source.state is StreamState.ENDED, 4, "the end of the file")
        stats = source.stats()
        assert stats["frames_read"] == VIDEO_FRAMES
        # Nothing newer will come: waiting returns at once instead of timing out.
        started = time.monotonic()
        assert await source.wait_frame(VIDEO_FRAMES, timeout=2) is None
        assert time.monotonic() - started < 0.5
        last = source.latest()
        assert last is not None and last.seq == VIDEO_FRAMES
    finally:
        assert await asyncio.to_thread(source.stop, 2)


async def test_only_the_latest_frame_is_kept(fast_video: Path) -> None:
    source = FrameSource(fast_video.as_uri())
    source.start()
    try:
        taken = 0
        last_seq = 0
        for _ in range(6):
            await asyncio.sleep(0.2)  # a consumer much slower than the 50 fps source
            read_before = source.stats()["frames_read"]
            frame = source.latest(last_seq)
            read_after = source.stats()["frames_read"]
            assert frame is not None
            # The newest frame at that moment, never an old one from a queue.
            assert read_before <= frame.seq <= read_after
            assert frame.seq > last_seq + 1
            last_seq = frame.seq
            taken += 1
        stats = source.stats()
    finally:
        assert await asyncio.to_thread(source.stop, 2)
    # Every frame read was taken, dropped, or is still waiting in the slot.
    assert stats["frames_read"] - taken - stats["frames_dropped"] in (0, 1)
    assert stats["frames_dropped"] >= 5 * taken


# -- network streams ------------------------------------------------------------------------


async def test_mjpeg_stream_stalls_reconnects_and_recovers(mjpeg: MjpegServer) -> None:
    source = FrameSource(
        mjpeg.url,
        open_timeout=2,
        read_timeout=3,
        stall_after=1,
        backoff_initial=0.2,
        backoff_max=0.4,
    )
    source.start()
    restarted: MjpegServer | None = None
    try:
        await until(lambda: source.stats()["frames_read"] >= 5, 8, "frames from the server")
        assert source.state is StreamState.STREAMING
        first = source.latest()
        assert first is not None and first.image.shape == (120, 160, 3)

        mjpeg.freeze()  # the camera hangs: connection open, no data
        await until(lambda: source.state is StreamState.STALLED, 4, "the stall watchdog")
        assert (source.stats()["last_error"] or "").startswith("stalled")

        mjpeg.close()  # and is gone: connections refused
        await until(
            lambda: (
                source.state is StreamState.RECONNECTING
                and (source.stats()["last_error"] or "").startswith("cannot open")
            ),
            4,
            "failed reconnection attempts",
        )
        assert source.stats()["reconnects"] >= 1
        seq_before = source.stats()["frames_read"]

        restarted = MjpegServer(port=mjpeg.port)  # back on the same address
        await until(lambda: source.state is StreamState.STREAMING, 8, "streaming again")
        frame = await source.wait_frame(seq_before, timeout=3)
        assert frame is not None and frame.seq > seq_before
    finally:
        stopped = await asyncio.to_thread(source.stop, 4)
        if restarted is not None:
            restarted.close()
    assert stopped


async def test_unopenable_url_keeps_reconnecting_and_stops_quickly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(FFMPEG_OPTIONS_ENV, "fflags;nobuffer")
    source = FrameSource(
        f"rtsp://127.0.0.1:{closed_port()}/x",
        open_timeout=1,
        read_timeout=1,
        backoff_initial=0.05,
        backoff_max=0.2,
    )
    source.start()
    try:
        await until(lambda: source.stats()["reconnects"] >= 2, 8, "a few reconnection attempts")
        stats = source.stats()
        assert stats["stream_state"] == "reconnecting"
        assert (stats["last_error"] or "").startswith("cannot open rtsp://127.0.0.1:")
        assert stats["frames_read"] == 0
        # RTSP over TCP was added to the operator's options, not written over them.
        assert os.environ[FFMPEG_OPTIONS_ENV] == "fflags;nobuffer|rtsp_transport;tcp"
    finally:
        started = time.monotonic()
        stopped = await asyncio.to_thread(source.stop, 1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 1.3
    assert stopped
    assert source.state is StreamState.STOPPED
    assert await source.wait_frame(0, timeout=5) is None


async def test_stop_is_bounded_while_a_read_is_blocked(mjpeg: MjpegServer) -> None:
    source = FrameSource(mjpeg.url, open_timeout=2, read_timeout=2, stall_after=10)
    source.start()
    try:
        await until(lambda: source.stats()["frames_read"] >= 3, 8, "frames from the server")
        mjpeg.frozen.set()  # the reader is now stuck in read() until the read timeout
        await asyncio.sleep(0.3)
    finally:
        started = time.monotonic()
        stopped = await asyncio.to_thread(source.stop, 0.5)
        elapsed = time.monotonic() - started
    assert elapsed < 0.8
    assert not stopped  # the blocked read is abandoned to its daemon thread, not waited for
    assert source.state is StreamState.STOPPED
    # The FFmpeg read timeout then frees the thread, which releases its own capture.
    assert await asyncio.to_thread(source.stop, 3)


# -- the runner -----------------------------------------------------------------------------


async def test_runner_processes_at_target_fps(fast_video: Path) -> None:
    source = FrameSource(fast_video.as_uri())
    runner = CameraRunner(source, MeasuringProcessor(), target_fps=10)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(1.5)
        metrics = runner.metrics()
    finally:
        started = time.monotonic()
        stopped = await runner.stop(2)
        elapsed = time.monotonic() - started
        await asyncio.wait_for(task, 1)
    assert stopped and elapsed < 2.2
    # A 50 fps source, processed at 10 fps for 1.5 s.
    assert 12 <= int(metrics["frames_processed"]) <= 18
    assert 7 <= float(metrics["fps"]) <= 13
    assert 40 <= float(metrics["fps_in"]) <= 60
    assert int(metrics["frames_dropped"]) >= int(metrics["frames_processed"])
    assert metrics["stream_state"] == "streaming"
    assert {"frames_read", "frames_dropped", "fps_in", "frames_processed", "fps"} <= set(metrics)
    assert source.state is StreamState.STOPPED


class StuckProcessor:
    def __init__(self) -> None:
        self.calls = 0

    async def process(self, frame: Frame) -> None:
        self.calls += 1
        await asyncio.sleep(60)

    def metrics(self) -> dict[str, float | int | str]:
        return {"frames_processed": 0, "fps": 0.0}


async def test_runner_stop_is_bounded_with_a_stuck_processor(fast_video: Path) -> None:
    processor = StuckProcessor()
    runner = CameraRunner(FrameSource(fast_video.as_uri()), processor, target_fps=None)
    task = asyncio.create_task(runner.run())
    await until(lambda: processor.calls == 1, 4, "the first frame")
    started = time.monotonic()
    stopped = await runner.stop(1)
    assert time.monotonic() - started < 1.3
    assert stopped
    assert task.done()


# -- the demo video -------------------------------------------------------------------------


def test_demo_video_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "cam.avi"
    make_demo_video(path, seconds=0.5, fps=10, size=(64, 48))
    first = (path.stat().st_ino, path.stat().st_mtime_ns)
    make_demo_video(path, seconds=0.5, fps=10, size=(64, 48))
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == first

    make_demo_video(path, seconds=0.5, fps=10, size=(64, 48), label="other")
    assert (path.stat().st_ino, path.stat().st_mtime_ns) != first
    cap = cv2.VideoCapture(str(path))
    try:
        assert cap.get(cv2.CAP_PROP_FPS) == 10
        assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 5
        ok, image = cap.read()
        assert ok and image.shape == (48, 64, 3)
    finally:
        cap.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.avi", "cam.avi.json"]

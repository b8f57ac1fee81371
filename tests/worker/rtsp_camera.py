"""An RTSP camera for the ingest tests: GStreamer's RTSP server playing an H.264 MP4.

Run with Debian's own Python (its python3-gi and gir1.2-gst-rtsp-server-1.0), not the
project's: ``/usr/bin/python3 rtsp_camera.py PORT VIDEO``. Serves rtsp://127.0.0.1:PORT/cam
on loopback only; each client session plays the video from the start, as a camera that
a client joins mid-stream would. It prints "ready" once it listens.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, video = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{video}" ! qtdemux ! h264parse ! '
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()

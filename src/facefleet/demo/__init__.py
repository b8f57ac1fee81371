"""Demo material generated locally, so the worker can run without a real camera."""

from facefleet.demo.video import make_demo_video

__all__ = ["make_demo_video"]

"""Worker settings, read from the environment with the prefix ``FACEFLEET_WORKER_``."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Cameras a core takes by default. bench/pipeline.py measures 10+ per core on the fixture
# clip (640x360 at 5 fps); 1080p cameras cost more to decode and search, so the default
# leaves room for them.
CAMERAS_PER_CORE = 4


def default_capacity() -> int:
    """Cameras a worker takes when not told: CAMERAS_PER_CORE for each core it may use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(64, CAMERAS_PER_CORE * cores))


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEFLEET_WORKER_", extra="ignore")

    api_url: str = Field(default="http://127.0.0.1:8000", description="Control plane URL.")
    api_key: str = Field(default="", description="The tenant's worker API key.")
    capacity: int = Field(
        default_factory=default_capacity,
        ge=1,
        le=64,
        description=f"Cameras this worker runs (default {CAMERAS_PER_CORE} per core).",
    )
    labels: list[str] = Field(default_factory=list, description="Labels cameras may require.")
    fence_margin: float = Field(
        default=1.0,
        gt=0,
        description="Seconds before the lease TTL at which an unconfirmed worker stops "
        "processing (self-fencing).",
    )
    shutdown_timeout: float = Field(
        default=10.0, gt=0, description="Bound on a graceful shutdown, in seconds."
    )
    request_timeout: float = Field(default=5.0, gt=0, description="Timeout of each API call.")
    stream_start_timeout: float = Field(
        default=15.0,
        gt=0,
        description="Seconds a new stream may go without a first frame before its camera is "
        "given back as failing.",
    )
    stream_stall_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a stream that had frames may go without one before its camera "
        "is given back as failing.",
    )
    frame_log: str = Field(
        default="",
        description="A file that records every processed frame (time, worker, camera, "
        "epoch): an audit of who processed which camera when. Empty: off.",
    )

    # -- the face pipeline ----------------------------------------------------------------
    pipeline: Literal["face", "measure"] = Field(
        default="face",
        description="face: recognise and report sightings; measure: only count frames.",
    )
    face_detector: Literal["auto", "hog", "yunet-hog", "yunet", "cnn"] = Field(
        default="auto",
        description="auto: yunet-hog where the yuface wheel is installed (CPython 3.11 on "
        "x86-64), else hog (docs/performance.md). hog: dlib's HOG. yunet-hog: YuNet (the "
        "libfacedetection CNN) proposes, HOG confirms on small crops. yunet: YuNet alone, "
        "which also finds turned faces, each then costing embeddings. cnn: dlib's MMOD.",
    )
    face_embedder: Literal["numpy", "dlib"] = Field(
        default="numpy",
        description="numpy: dlib's face ResNet computed with numpy's OpenBLAS, about 6x "
        "faster than the dlib-bin wheel's (docs/performance.md); each process checks it "
        "against dlib's at start-up and uses dlib's, with a warning, if they differ. "
        "dlib: dlib's own.",
    )
    face_search_min_size: int = Field(
        default=40,
        ge=8,
        description="Smallest face (box width, camera pixels) looked for where motion is; "
        "regions are upscaled only as far as this needs.",
    )
    face_pixel_budget: int = Field(
        default=1_500_000,
        ge=10_000,
        description="Most pixels the detector scans per frame (a scene cut moves everything).",
    )
    motion_gate: bool = Field(
        default=True,
        description="Search only where the frame moved and around tracked faces; "
        "false searches every frame whole.",
    )
    motion_threshold: int = Field(
        default=14, ge=1, le=254, description="Grey levels of change that count as motion."
    )
    face_recheck_interval: float = Field(
        default=3.0, gt=0, description="Seconds between embeddings of a face already recognised."
    )
    face_processes: int | None = Field(
        default=None,
        ge=0,
        le=256,
        description="Processes doing the face work of all cameras (default: one per core; "
        "0 runs it in threads of the worker process).",
    )
    frame_budget: float = Field(
        default=1.0,
        gt=0,
        description="Seconds after capture by which a frame's work must start, else it is "
        "dropped and counted (frames_dropped_budget), so an overloaded worker stays live.",
    )
    min_face_size: int = Field(
        default=32, ge=0, description="Smaller faces (pixels) are tracked but do not vote."
    )
    min_sharpness: float = Field(
        default=10.0, ge=0, description="Blurrier faces (Laplacian variance) do not vote."
    )
    report_unknown: bool = Field(
        default=True, description="Report faces matching nobody as unknown sightings."
    )
    send_crops: bool = Field(default=True, description="Send a small JPEG of each track's face.")
    track_max_gap: float = Field(
        default=1.5, gt=0, description="Seconds without a face after which its track ends."
    )
    sighting_update_interval: float = Field(
        default=10.0, gt=0, description="Seconds between updates of a track still in view."
    )

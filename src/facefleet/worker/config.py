"""Worker settings, read from the environment with the prefix ``FACEFLEET_WORKER_``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEFLEET_WORKER_", extra="ignore")

    api_url: str = Field(default="http://127.0.0.1:8000", description="Control plane URL.")
    api_key: str = Field(default="", description="The tenant's worker API key.")
    capacity: int = Field(default=1, ge=1, le=64, description="Cameras this worker runs.")
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
    face_detector: Literal["hog", "cnn"] = Field(
        default="hog", description="hog is fast on CPU; cnn finds smaller and turned faces."
    )
    face_upsample: int = Field(
        default=0, ge=0, le=2, description="Detection upsampling (finds smaller faces, ~4x cost)."
    )
    face_detection_width: int = Field(
        default=640, ge=64, description="Frames wider than this are downscaled for detection."
    )
    min_face_size: int = Field(
        default=40, ge=0, description="Smaller faces (pixels) are tracked but do not vote."
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

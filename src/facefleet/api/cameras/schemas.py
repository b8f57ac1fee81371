"""Camera request and response bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from facefleet.api.cameras.states import CameraState
from facefleet.protocol.ids import Label
from facefleet.protocol.source_urls import validate_source_url


class CameraFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("source_url", check_fields=False)
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else validate_source_url(value)


class CameraCreate(CameraFields):
    name: str = Field(min_length=1, max_length=128, description="Unique within the tenant.")
    source_url: str = Field(
        min_length=1,
        max_length=2048,
        description="rtsp://, http(s)://, file:// or device:// source.",
    )
    enabled: bool = True
    target_fps: float = Field(default=5.0, gt=0, le=60, description="Frames to process per s.")
    required_labels: list[Label] = Field(
        default_factory=list, max_length=16, description="Labels a worker must have to take it."
    )
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher is assigned first.")
    match_threshold: float | None = Field(
        default=None, gt=0, le=2.0, description="Overrides the tenant's match threshold."
    )


class CameraUpdate(CameraFields):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    source_url: str | None = Field(default=None, min_length=1, max_length=2048)
    enabled: bool | None = None
    target_fps: float | None = Field(default=None, gt=0, le=60)
    required_labels: list[Label] | None = Field(default=None, max_length=16)
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    match_threshold: float | None = Field(default=None, gt=0, le=2.0)


class CameraLeaseOut(BaseModel):
    worker_id: str | None
    epoch: int
    assigned_at: datetime | None


class CameraOut(BaseModel):
    id: int
    name: str
    source_url: str = Field(description="The source URL with credentials masked.")
    enabled: bool
    target_fps: float
    required_labels: list[str]
    priority: int
    match_threshold: float | None
    created_at: datetime
    updated_at: datetime
    lease: CameraLeaseOut
    state: CameraState = Field(
        description="disabled, unassigned, failing (its stream failed; offered again after a "
        "backoff), starting, streaming or stalled (held, but no frames)."
    )
    worker_id: str | None = Field(description="The worker processing it, if any.")
    fps: float = Field(description="Frames processed per second, as its worker reports.")
    frames_processed: int
    last_error: str | None = Field(description="The last error of its stream, if any.")
    failures: int = Field(description="Stream failures in a row (0 once it streams again).")


class CameraPage(BaseModel):
    items: list[CameraOut]
    total: int
    offset: int
    limit: int

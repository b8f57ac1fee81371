"""Bodies of the consolidated worker API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from facefleet.api.labels import Label
from facefleet.api.storage.hot.base import WorkerStatus

WORKER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
WorkerId = Annotated[str, StringConstraints(pattern=WORKER_ID_PATTERN)]
DesiredState = Literal["run", "drain", "stop"]


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_id: WorkerId = Field(description="Stable identity of the worker (see WORKER_ID).")
    instance_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex,
        min_length=1,
        max_length=64,
        description="Identifies this process; a second process with the same worker_id has "
        "another instance_id and is refused while the first is live.",
    )
    hostname: str = Field(default="", max_length=255)
    version: str = Field(default="", max_length=64)
    capacity: int = Field(default=1, ge=1, le=64, description="Cameras this worker can run.")
    labels: list[Label] = Field(default_factory=list, max_length=32)


class LeaseInfo(BaseModel):
    camera_id: int
    epoch: int
    valid: bool
    expires_in: float = Field(description="Seconds until the lease lapses without a heartbeat.")


class RegisterResponse(BaseModel):
    worker_id: str
    session_token: str = Field(description="Send as X-Worker-Session on every later call.")
    status: WorkerStatus
    desired_state: DesiredState
    heartbeat_interval: float
    heartbeat_jitter: float
    lease_ttl: float
    leases: list[LeaseInfo]


MetricValue = float | int | str | bool | None


class HeartbeatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: dict[str, MetricValue | dict[str, MetricValue]] | None = Field(
        default=None,
        description="Latest metrics (fps, frames_dropped, stream_state, cpu_percent, ...).",
        max_length=64,
    )


class HeartbeatResponse(BaseModel):
    status: WorkerStatus
    desired_state: DesiredState
    leases: list[LeaseInfo]
    commands: list[dict[str, Any]] = Field(
        default_factory=list, description="Commands to execute, then acknowledge."
    )
    stop_mode: str | None = Field(default=None, description="graceful or immediate when stopping.")
    heartbeat_interval: float
    lease_ttl: float
    server_time: float
    gallery_version: int = Field(
        default=0, description="The tenant's gallery version: reload the gallery when it changes."
    )


class Assignment(BaseModel):
    camera_id: int
    name: str
    source_url: str = Field(description="The full source URL, credentials included.")
    target_fps: float
    epoch: int
    lease_ttl: float
    match_threshold: float = Field(description="Largest embedding distance that is a match.")


class CameraRequestResponse(BaseModel):
    assignment: Assignment | None
    retry_after: float | None = Field(
        default=None, description="Seconds to wait before asking again when nothing was assigned."
    )
    reason: str | None = None


class CurrentAssignments(BaseModel):
    worker_id: str
    assignments: list[Assignment]


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_id: int
    epoch: int


class ReleaseResponse(BaseModel):
    released: bool
    camera_id: int
    epoch: int


class WorkerEventOut(BaseModel):
    kind: str
    camera_id: int | None
    epoch: int | None
    detail: dict[str, Any]
    created_at: datetime


class WorkerOut(BaseModel):
    worker_id: str
    hostname: str
    version: str
    status: WorkerStatus
    desired_state: DesiredState
    capacity: int
    labels: list[str]
    registered_at: datetime
    last_seen_at: datetime | None
    metrics: dict[str, Any]
    cameras: list[LeaseInfo]


class WorkerDetail(WorkerOut):
    history: list[WorkerEventOut]


class WorkerPage(BaseModel):
    items: list[WorkerOut]
    total: int
    offset: int
    limit: int


class WorkerStats(BaseModel):
    workers: dict[str, int] = Field(description="Count of workers by status.")
    cameras: dict[str, int] = Field(description="assigned / unassigned / disabled.")
    heartbeats_per_second: float


class DeregisterResponse(BaseModel):
    worker_id: str
    released_cameras: list[int]


class CleanupChange(BaseModel):
    worker_id: str
    from_status: str
    to_status: str
    released_cameras: list[int]


class CleanupResponse(BaseModel):
    dry_run: bool
    changes: list[CleanupChange]


WORKER_ID_PATH = Path(pattern=WORKER_ID_PATTERN, description="The worker's WORKER_ID.")


CommandType = Literal[
    "reload_gallery", "restart_stream", "set_config", "release_camera", "snapshot"
]
CommandStatus = Literal["pending", "delivered", "acked", "failed", "expired"]


class CommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: CommandType
    payload: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Repeating a request with the same key returns the first command.",
    )
    ttl_seconds: float = Field(
        default=60.0, gt=0, le=86_400, description="Expires unacknowledged after this long."
    )


class CommandOut(BaseModel):
    id: int
    worker_id: str
    type: CommandType
    payload: dict[str, Any]
    status: CommandStatus
    idempotency_key: str | None
    result: dict[str, Any] | None
    created_at: datetime
    delivered_at: datetime | None
    completed_at: datetime | None
    expires_at: datetime


class CommandPage(BaseModel):
    items: list[CommandOut]
    offset: int
    limit: int


class CommandAck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["acked", "failed"] = "acked"
    result: dict[str, Any] = Field(default_factory=dict)


class ShutdownSignal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["graceful", "immediate"] = "graceful"
    deadline_seconds: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="Operator signals only: force the worker offline if it has not left by then "
        "(default: 30 s graceful, one lease TTL immediate).",
    )
    reason: str = Field(default="", max_length=500)
    source: Literal["worker", "operator"] | None = Field(
        default=None, description="Informational; the key's role decides who sent it."
    )


class ShutdownResponse(BaseModel):
    worker_id: str
    source: Literal["worker", "operator"]
    mode: Literal["graceful", "immediate"]
    status: WorkerStatus
    desired_state: DesiredState
    released_cameras: list[int]
    deadline: datetime | None


class ControlResponse(BaseModel):
    worker_id: str
    status: WorkerStatus
    desired_state: DesiredState

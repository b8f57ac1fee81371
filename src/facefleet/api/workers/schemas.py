"""Bodies of the consolidated worker API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from facefleet.protocol.commands import CommandAck as CommandAck
from facefleet.protocol.commands import CommandType
from facefleet.protocol.enums import DesiredState as DesiredState
from facefleet.protocol.enums import WorkerStatus as WorkerStatus
from facefleet.protocol.ids import WorkerId as WorkerId
from facefleet.protocol.json_values import JsonObject, StoredJson
from facefleet.protocol.workers import Assignment as Assignment
from facefleet.protocol.workers import CameraRequestResponse as CameraRequestResponse
from facefleet.protocol.workers import CurrentAssignments as CurrentAssignments
from facefleet.protocol.workers import DeregisterResponse as DeregisterResponse
from facefleet.protocol.workers import HeartbeatRequest as HeartbeatRequest
from facefleet.protocol.workers import HeartbeatResponse as HeartbeatResponse
from facefleet.protocol.workers import LeaseInfo as LeaseInfo
from facefleet.protocol.workers import RegisterRequest as RegisterRequest
from facefleet.protocol.workers import RegisterResponse as RegisterResponse
from facefleet.protocol.workers import ReleaseRequest as ReleaseRequest
from facefleet.protocol.workers import ReleaseResponse as ReleaseResponse
from facefleet.protocol.workers import ShutdownResponse as ShutdownResponse
from facefleet.protocol.workers import ShutdownSignal as ShutdownSignal


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
    metrics: StoredJson
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


class CleanupChange(BaseModel):
    worker_id: str
    from_status: str
    to_status: str
    released_cameras: list[int]


class CleanupResponse(BaseModel):
    dry_run: bool
    changes: list[CleanupChange]


CommandStatus = Literal["pending", "delivered", "acked", "failed", "expired"]


class CommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: CommandType
    payload: JsonObject = Field(default_factory=dict)
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
    payload: StoredJson
    status: CommandStatus
    idempotency_key: str | None
    result: StoredJson | None
    created_at: datetime
    delivered_at: datetime | None
    completed_at: datetime | None
    expires_at: datetime


class CommandPage(BaseModel):
    items: list[CommandOut]
    offset: int
    limit: int


class ControlResponse(BaseModel):
    worker_id: str
    status: WorkerStatus
    desired_state: DesiredState

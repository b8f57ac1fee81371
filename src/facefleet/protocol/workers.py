"""The worker API on the wire: registration, heartbeats, leases, assignments, shutdown.

Requests refuse unknown fields (a typo is an error, not a silent default); responses ignore
them, so an older worker keeps working against a newer control plane.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from facefleet.protocol.commands import CommandDelivery
from facefleet.protocol.enums import DesiredText, StatusText, StopMode, StopModeText
from facefleet.protocol.ids import BigCount, BigInt, Epoch, Id, Label, WorkerId
from facefleet.protocol.json_values import JSON_CHECKED


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RegisterRequest(Request):
    worker_id: WorkerId = Field(description="Stable identity of the worker (see WORKER_ID).")
    instance_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex,
        min_length=1,
        max_length=64,
        description="Identifies this process in the control plane's records (never shown). "
        "It grants nothing: a live worker's session is replaced only by a caller sending "
        "that session's X-Worker-Session, or once the session is stale.",
    )
    hostname: str = Field(default="", max_length=255)
    version: str = Field(default="", max_length=64)
    capacity: int = Field(default=1, ge=1, le=64, description="Cameras this worker can run.")
    labels: list[Label] = Field(default_factory=list, max_length=32)


class LeaseInfo(Response):
    camera_id: int
    epoch: int
    valid: bool
    expires_in: float = Field(description="Seconds until the lease lapses without a heartbeat.")


GENERATION_DESCRIPTION = (
    "The worker's lease generation: it changes with every change of the worker's lease set. "
    "Lease state older than the newest one applied is ignored; a lease missing from lease "
    "state no newer than the one that granted it is not a revocation."
)


class RegisterResponse(Response):
    worker_id: str
    # A credential: kept out of reprs, hence out of logs.
    session_token: str = Field(
        description="Send as X-Worker-Session on every later call.", repr=False
    )
    status: StatusText
    desired_state: DesiredText
    heartbeat_interval: float
    heartbeat_jitter: float
    lease_ttl: float
    leases: list[LeaseInfo]
    generation: int | None = Field(default=None, description=GENERATION_DESCRIPTION)
    presence_beat: float | None = Field(
        default=None,
        description="Seconds between the bytes of the presence stream (GET .../presence); "
        "None from servers without one.",
    )
    presence_grace: float | None = Field(
        default=None,
        description="Seconds after the presence stream breaks off before the worker counts "
        "as gone: it must fence itself before then.",
    )


# The longest frame a worker may still be processing once it decides to fence itself: it
# fences that long before the presence grace ends, and the grace must leave room for it.
PRESENCE_FRAME_ALLOWANCE = 0.5

MetricValue = float | BigInt | str | bool | None
Metrics = Annotated[dict[str, MetricValue | dict[str, MetricValue]], JSON_CHECKED]


StreamStateName = Literal["starting", "streaming", "stalled", "failing"]
MAX_STREAMS = 64  # a worker's largest capacity


class StreamReport(Request):
    """How one of the worker's streams is doing, as of this heartbeat."""

    camera_id: Id
    epoch: Epoch
    state: StreamStateName = Field(
        description="starting: no frame yet; streaming: frames arrive; stalled: the source "
        "stopped delivering or is reconnecting; failing: it cannot be opened."
    )
    frames_processed: BigCount = 0
    frames_dropped: BigCount = 0
    fps: float = Field(default=0.0, ge=0)
    last_error: str | None = Field(default=None, max_length=500)


class HeartbeatRequest(Request):
    metrics: Annotated[dict[str, MetricValue | dict[str, MetricValue]], JSON_CHECKED] | None = (
        Field(
            default=None,
            description="Latest metrics (fps, frames_dropped, stream_state, cpu_percent, ...).",
            max_length=64,
        )
    )
    streams: list[StreamReport] | None = Field(
        default=None,
        max_length=MAX_STREAMS,
        description="The state of each stream; None from workers that predate it.",
    )


class HeartbeatResponse(Response):
    status: StatusText
    desired_state: DesiredText
    leases: list[LeaseInfo]
    # Earlier servers called the field "pending".
    commands: list[CommandDelivery] = Field(
        default_factory=list,
        validation_alias=AliasChoices("commands", "pending"),
        description="Commands to execute, then acknowledge.",
    )
    stop_mode: StopModeText | None = Field(
        default=None, description="graceful or immediate when stopping."
    )
    heartbeat_interval: float
    lease_ttl: float
    server_time: float
    gallery_version: int | None = Field(
        default=None,
        description="The tenant's gallery version: reload the gallery when it changes.",
    )
    generation: int | None = Field(default=None, description=GENERATION_DESCRIPTION)


class Assignment(Response):
    camera_id: int
    name: str
    source_url: str = Field(description="The full source URL, credentials included.", repr=False)
    target_fps: float
    epoch: int
    lease_ttl: float
    match_threshold: float | None = Field(
        default=None, description="Largest embedding distance that is a match."
    )


class CameraRequestResponse(Response):
    assignment: Assignment | None
    retry_after: float | None = Field(
        default=None, description="Seconds to wait before asking again when nothing was assigned."
    )
    reason: str | None = None
    held: list[Assignment] = Field(
        default_factory=list,
        description="Every camera the worker holds, the new one included: a worker that "
        "missed an assignment (a lost response) learns of it here.",
    )
    generation: int | None = Field(default=None, description=GENERATION_DESCRIPTION)


class CurrentAssignments(Response):
    worker_id: str
    assignments: list[Assignment]
    generation: int | None = Field(default=None, description=GENERATION_DESCRIPTION)


class ReleaseRequest(Request):
    camera_id: Id
    epoch: Epoch
    error: str | None = Field(
        default=None,
        max_length=500,
        description="Why the stream failed, when it did: the camera is then shown as failing "
        "and offered again only after a backoff, so a broken camera cannot bounce through "
        "the fleet.",
    )


class ReleaseResponse(Response):
    released: bool
    camera_id: int
    epoch: int
    generation: int | None = Field(default=None, description=GENERATION_DESCRIPTION)


class DeregisterResponse(Response):
    worker_id: str
    released_cameras: list[int]


class ShutdownSignal(Request):
    mode: StopMode = "graceful"
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


class ShutdownResponse(Response):
    worker_id: str
    source: Literal["worker", "operator"]
    mode: StopMode
    status: StatusText
    desired_state: DesiredText
    released_cameras: list[int]
    deadline: datetime | None

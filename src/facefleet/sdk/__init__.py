"""facefleet's Python SDK: the async client a worker uses to talk to the control plane.

It depends on httpx, pydantic, tenacity and ``facefleet.protocol`` only, never on the
control plane's code. See ``facefleet.sdk._errors`` for the exception tree.
"""

from facefleet.sdk._client import Metrics, WorkerClient, process_instance_id
from facefleet.sdk._errors import (
    ApiError,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    InvalidResponse,
    StaleEpoch,
    Unauthorized,
    WorkerClientError,
    WorkerIdInUse,
    WorkerNotFound,
    retry_after_seconds,
)
from facefleet.sdk._models import (
    Assignment,
    CameraRequestResult,
    Command,
    CurrentAssignments,
    DeregisterResult,
    GalleryData,
    HeartbeatResult,
    LeaseInfo,
    Registration,
    ReleaseResult,
    Sighting,
    SightingsAccepted,
    StreamReport,
)
from facefleet.sdk._retry import RetryPolicy

__all__ = [
    "ApiError",
    "Assignment",
    "CameraRequestResult",
    "Command",
    "ConnectionFailed",
    "CurrentAssignments",
    "DeregisterResult",
    "Forbidden",
    "GalleryData",
    "HeartbeatResult",
    "InvalidRequest",
    "InvalidResponse",
    "LeaseInfo",
    "Metrics",
    "Registration",
    "ReleaseResult",
    "RetryPolicy",
    "Sighting",
    "SightingsAccepted",
    "StaleEpoch",
    "StreamReport",
    "Unauthorized",
    "WorkerClient",
    "WorkerClientError",
    "WorkerIdInUse",
    "WorkerNotFound",
    "process_instance_id",
    "retry_after_seconds",
]

"""Error names of the API: the ``error`` field of every error body."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class ErrorName(StrEnum):
    unauthorized = "Unauthorized"
    forbidden = "Forbidden"
    not_found = "NotFound"
    worker_not_found = "WorkerNotFound"
    camera_not_found = "CameraNotFound"
    conflict = "Conflict"
    worker_id_in_use = "WorkerIdInUse"
    stale_epoch = "StaleEpoch"
    payload_too_large = "PayloadTooLarge"
    validation_error = "ValidationError"
    service_unavailable = "ServiceUnavailable"
    too_many_requests = "TooManyRequests"
    method_not_allowed = "MethodNotAllowed"
    internal_error = "InternalError"


class ErrorBody(BaseModel):
    error: str = Field(description="The error's name, e.g. WorkerNotFound.")
    detail: Any = Field(description="What went wrong and what to do about it.")

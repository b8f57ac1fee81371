"""The SDK's exceptions.

    WorkerClientError             every error the client raises
    ├── ConnectionFailed          no answer (connection refused or reset, timeout) after retries
    ├── InvalidRequest            the request breaks the protocol: refused before it is sent
    └── ApiError                  the control plane answered with an error body
        ├── Unauthorized          401: the API key is missing, invalid, revoked or expired
        ├── Forbidden             403: the key may not do this, or the session is not this worker's
        ├── WorkerNotFound        404: not registered (or declared offline): register again
        ├── WorkerIdInUse         409: another live process holds this worker_id
        ├── StaleEpoch            409: the camera is no longer this worker's at that epoch
        └── InvalidResponse       the answer is not what the protocol defines

``ApiError`` carries the status, the error name, the detail, the body and ``retry_after``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from facefleet.protocol.errors import ErrorName


class WorkerClientError(Exception):
    pass


class ConnectionFailed(WorkerClientError):
    """The control plane did not answer (connection error or timeout) within the retries."""


class InvalidRequest(WorkerClientError):
    """The request would break the protocol (e.g. an invalid label): it was not sent."""


class ApiError(WorkerClientError):
    """The control plane answered with an error: ``{"error": name, "detail": ...}``."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        body: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.body: Mapping[str, Any] = body or {}
        self.retry_after = retry_after


class Unauthorized(ApiError):
    pass


class Forbidden(ApiError):
    pass


class WorkerNotFound(ApiError):
    pass


class WorkerIdInUse(ApiError):
    """Another live process holds this worker_id; ``retry_after`` says when it may lapse."""


class StaleEpoch(ApiError):
    """The camera is no longer this worker's at that epoch: stop processing it."""


class InvalidResponse(ApiError):
    """The control plane's answer does not parse as the protocol's model."""


_BY_NAME: dict[tuple[int, str], type[ApiError]] = {
    (404, ErrorName.worker_not_found): WorkerNotFound,
    (409, ErrorName.worker_id_in_use): WorkerIdInUse,
    (409, ErrorName.stale_epoch): StaleEpoch,
}
_BY_STATUS: dict[int, type[ApiError]] = {401: Unauthorized, 403: Forbidden}


def retry_after_seconds(resp: httpx.Response) -> float | None:
    """The Retry-After header in seconds (delta-seconds or an HTTP date), if usable."""
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def error_name(resp: httpx.Response) -> str | None:
    """The ``error`` field of an error body, if it has one."""
    try:
        body = resp.json()
    except ValueError:
        return None
    name = body.get("error") if isinstance(body, dict) else None
    return name if isinstance(name, str) else None


def error_from(resp: httpx.Response) -> ApiError:
    try:
        parsed = resp.json()
    except ValueError:
        parsed = None
    body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    name = str(body.get("error") or resp.reason_phrase or "HTTPError")
    detail = body.get("detail")
    in_body = body.get("retry_after")
    retry_after = float(in_body) if isinstance(in_body, int | float) else retry_after_seconds(resp)
    cls = _BY_NAME.get((resp.status_code, name)) or _BY_STATUS.get(resp.status_code, ApiError)
    return cls(
        resp.status_code,
        name,
        resp.text if detail is None else str(detail),
        body=body,
        retry_after=retry_after,
    )

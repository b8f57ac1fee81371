"""Async client of the consolidated worker API (/v1/workers): the worker's Python SDK.

It depends on httpx, pydantic and tenacity only, never on facefleet.api, so workers can
install and run it without the control plane's code.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import httpx
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from facefleet import __version__
from facefleet.worker.worker_id_manager import validate_worker_id

# -- results --------------------------------------------------------------------------------


class _Result(BaseModel):
    # Fields a newer server adds are ignored, and statuses stay plain strings, so an older
    # worker keeps working against a newer control plane.
    model_config = ConfigDict(extra="ignore")


class LeaseInfo(_Result):
    camera_id: int
    epoch: int
    valid: bool
    expires_in: float


class Registration(_Result):
    worker_id: str
    session_token: str = Field(repr=False)  # a credential: keep it out of logs
    status: str
    desired_state: str  # run | drain | stop
    heartbeat_interval: float
    heartbeat_jitter: float
    lease_ttl: float
    leases: list[LeaseInfo]


class HeartbeatResult(_Result):
    status: str
    desired_state: str
    leases: list[LeaseInfo]
    # Commands to execute, then acknowledge; earlier servers called the field "pending".
    commands: list[dict[str, Any]] = Field(
        default_factory=list, validation_alias=AliasChoices("commands", "pending")
    )
    stop_mode: str | None = None  # graceful | immediate, when desired_state is "stop"
    heartbeat_interval: float
    lease_ttl: float
    server_time: float
    # The tenant's gallery version: a worker holding an older one reloads it.
    gallery_version: int | None = None


class Assignment(_Result):
    camera_id: int
    name: str
    source_url: str = Field(repr=False)  # carries the camera's credentials
    target_fps: float
    epoch: int
    lease_ttl: float
    # The camera's effective match threshold; None from servers that predate it.
    match_threshold: float | None = None


class CameraRequestResult(_Result):
    assignment: Assignment | None
    retry_after: float | None = None
    reason: str | None = None


class CurrentAssignments(_Result):
    worker_id: str
    assignments: list[Assignment]


class ReleaseResult(_Result):
    released: bool
    camera_id: int
    epoch: int


class DeregisterResult(_Result):
    worker_id: str
    released_cameras: list[int]


class GalleryData(_Result):
    """The tenant's enrolled faces, as the worker matches against them."""

    version: int
    model: str
    threshold: float  # the tenant's default; a camera's assignment may override it
    dim: int
    person_ids: list[int]  # the person of each embedding row
    people: dict[str, str]  # person id -> name
    embeddings_b64: str = Field(repr=False)  # row-major float32 little-endian (n, dim)


class Sighting(BaseModel):
    """One track of a face on a camera; posting the same track_id again updates it."""

    track_id: str = Field(max_length=64)
    person_id: int | None  # None: an unknown face
    first_seen: float  # unix seconds
    last_seen: float
    best_distance: float | None
    frames: int
    crop_jpeg_b64: str | None = Field(default=None, repr=False)


class SightingsAccepted(_Result):
    accepted: int
    ids: list[int] = Field(default_factory=list)


# -- errors ---------------------------------------------------------------------------------


class WorkerClientError(Exception):
    pass


class ConnectionFailed(WorkerClientError):
    """The control plane did not answer (connection error or timeout) within the retries."""


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


_ERRORS_BY_NAME: dict[tuple[int, str], type[ApiError]] = {
    (404, "WorkerNotFound"): WorkerNotFound,
    (409, "WorkerIdInUse"): WorkerIdInUse,
    (409, "StaleEpoch"): StaleEpoch,
}
_ERRORS_BY_STATUS: dict[int, type[ApiError]] = {401: Unauthorized, 403: Forbidden}


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
    cls = _ERRORS_BY_NAME.get((resp.status_code, name)) or _ERRORS_BY_STATUS.get(
        resp.status_code, ApiError
    )
    return cls(
        resp.status_code,
        name,
        resp.text if detail is None else str(detail),
        body=body,
        retry_after=retry_after,
    )


# -- retries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one request on connection errors, timeouts, 429 and 503."""

    max_attempts: int = 5
    max_total: float = 30.0  # seconds since the first attempt after which none starts
    backoff_initial: float = 0.5
    backoff_max: float = 8.0


RETRY_STATUSES = frozenset({429, 503})
# Errors where the server may not have seen the request, or was not there to answer.
RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _is_retry_status(resp: httpx.Response) -> bool:
    return resp.status_code in RETRY_STATUSES


def _last_outcome(state: RetryCallState) -> httpx.Response:
    """Out of retries: hand back the last response, or raise the last exception."""
    assert state.outcome is not None
    resp: httpx.Response = state.outcome.result()
    return resp


# -- the client -----------------------------------------------------------------------------

_process_instance_id = uuid.uuid4().hex


def _renew_process_instance_id() -> None:
    # A forked child is another process and must not share its parent's instance_id.
    global _process_instance_id
    _process_instance_id = uuid.uuid4().hex


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_process_instance_id)


def process_instance_id() -> str:
    return _process_instance_id


R = TypeVar("R", bound=BaseModel)
Metrics = Mapping[str, Any]


class WorkerClient:
    """One worker's session with the control plane; use as ``async with``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        worker_id: str,
        *,
        instance_id: str | None = None,
        hostname: str | None = None,
        version: str = __version__,
        capacity: int = 1,
        labels: Sequence[str] = (),
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.worker_id = validate_worker_id(worker_id, "WorkerClient(worker_id=...)")
        self.instance_id = instance_id or process_instance_id()
        self.hostname = (hostname if hostname is not None else socket.gethostname())[:255]
        self.version = version
        self.capacity = capacity
        self.labels = list(labels)
        self.retry = retry or RetryPolicy()
        self.registration: Registration | None = None
        self._backoff = wait_random_exponential(
            multiplier=self.retry.backoff_initial, max=self.retry.backoff_max
        )
        self._register_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {api_key}"},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        # Closing does not deregister: a restarted worker re-registers and keeps its leases.
        await self._http.aclose()

    @property
    def session_token(self) -> str | None:
        return self.registration.session_token if self.registration else None

    # -- operations ---------------------------------------------------------------------

    async def register(self) -> Registration:
        """Register (or re-register) this worker_id; a new session token each time."""
        body = {
            "worker_id": self.worker_id,
            "instance_id": self.instance_id,
            "hostname": self.hostname,
            "version": self.version,
            "capacity": self.capacity,
            "labels": self.labels,
        }
        resp = await self._send("POST", "/v1/workers/register", body, session=False)
        self.registration = _parse(resp, Registration)
        return self.registration

    async def heartbeat(self, metrics: Metrics | None = None) -> HeartbeatResult:
        body = {"metrics": dict(metrics) if metrics is not None else None}
        return await self._worker_call("POST", "/heartbeat", body, HeartbeatResult)

    async def request_camera(self) -> CameraRequestResult:
        """A camera, or ``assignment=None`` with ``retry_after`` when none is free.

        Not idempotent: if a retried request was already served, the worker may hold a lease
        it was not told about; the ``leases`` of each heartbeat are the source of truth.
        """
        return await self._worker_call("POST", "/camera/request", None, CameraRequestResult)

    async def current_cameras(self) -> CurrentAssignments:
        return await self._worker_call("GET", "/camera", None, CurrentAssignments)

    async def release_camera(self, camera_id: int, epoch: int) -> ReleaseResult:
        body = {"camera_id": camera_id, "epoch": epoch}
        return await self._worker_call("POST", "/camera/release", body, ReleaseResult)

    async def deregister(self) -> DeregisterResult:
        resp = await self._send("DELETE", self._path(""))
        result = _parse(resp, DeregisterResult)
        self.registration = None
        return result

    async def signal_shutdown(self, reason: str) -> dict[str, Any]:
        body = {"reason": reason, "source": "worker"}
        return _json(await self._send("POST", self._path("/shutdown/signal"), body))

    async def ack_command(
        self,
        command_id: int,
        status: Literal["acked", "failed"],
        result: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        path = self._path(f"/commands/{int(command_id)}/ack")
        body = {"status": status, "result": dict(result or {})}
        return _json(await self._send_reregistering("POST", path, body))

    async def get_gallery(self) -> GalleryData:
        resp = await self._send_reregistering("GET", "/v1/gallery", None)
        return _parse(resp, GalleryData)

    async def report_sightings(
        self, camera_id: int, epoch: int, sightings: Sequence[Sighting]
    ) -> SightingsAccepted:
        """Post sightings of a camera held at ``epoch``; StaleEpoch once it is not.

        Safe to retry: a track_id posted again updates its sighting instead of adding one.
        """
        body = {
            "camera_id": camera_id,
            "epoch": epoch,
            "sightings": [s.model_dump(mode="json") for s in sightings],
        }
        return await self._worker_call("POST", "/sightings", body, SightingsAccepted)

    # -- plumbing -----------------------------------------------------------------------

    def _path(self, suffix: str) -> str:
        return f"/v1/workers/{self.worker_id}{suffix}"

    async def _worker_call(self, method: str, suffix: str, body: Any, model: type[R]) -> R:
        return _parse(await self._send_reregistering(method, self._path(suffix), body), model)

    async def _send_reregistering(self, method: str, path: str, body: Any) -> httpx.Response:
        """Send; when the server no longer knows this worker, register again and resend once.

        The server forgets a worker the reaper declared offline (e.g. after a network
        partition longer than the lease TTL); the same worker_id and instance_id come back.
        """
        token = self.session_token
        resp = await self._send(method, path, body)
        if resp.status_code != 404 or _error_name(resp) != "WorkerNotFound":
            return resp
        async with self._register_lock:
            # Concurrent calls that failed together re-register once, not once each.
            if self.session_token == token:
                await self.register()
        return await self._send(method, path, body)

    async def _send(
        self, method: str, path: str, body: Any = None, *, session: bool = True
    ) -> httpx.Response:
        headers = {}
        if session and self.session_token:
            headers["X-Worker-Session"] = self.session_token
        policy = self.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(policy.max_total),
            wait=self._wait,
            retry=retry_if_exception_type(RETRY_ERRORS) | retry_if_result(_is_retry_status),
            retry_error_callback=_last_outcome,
        )
        try:
            resp: httpx.Response = await retrying(
                self._http.request, method, path, json=body, headers=headers
            )
        except RETRY_ERRORS as exc:
            raise ConnectionFailed(
                f"{method} {path}: control plane unreachable ({type(exc).__name__}: {exc})"
            ) from exc
        return resp

    def _wait(self, state: RetryCallState) -> float:
        """The server's Retry-After when it gave one, else jittered exponential backoff."""
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            delay = retry_after_seconds(outcome.result())
            if delay is not None:
                return delay
        return float(self._backoff(state))


def _error_name(resp: httpx.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    name = body.get("error") if isinstance(body, dict) else None
    return name if isinstance(name, str) else None


def _json(resp: httpx.Response) -> dict[str, Any]:
    if not resp.is_success:
        raise error_from(resp)
    if not resp.content:
        return {}
    try:
        body = resp.json()
    except ValueError as exc:
        raise ApiError(resp.status_code, "InvalidResponse", "body is not JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(resp.status_code, "InvalidResponse", "body is not a JSON object")
    return body


def _parse(resp: httpx.Response, model: type[R]) -> R:
    body = _json(resp)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ApiError(
            resp.status_code, "InvalidResponse", f"unexpected {model.__name__}: {exc}"
        ) from exc

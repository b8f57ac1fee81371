"""The async client of the consolidated worker API (/v1/workers)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
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
from facefleet.protocol.commands import AckStatus, CommandAck
from facefleet.protocol.errors import ErrorName
from facefleet.protocol.ids import validate_worker_id
from facefleet.protocol.json_values import sanitized
from facefleet.protocol.sightings import SightingBatch
from facefleet.protocol.workers import (
    RegisterRequest,
    ReleaseRequest,
    ShutdownSignal,
    StreamReport,
)
from facefleet.sdk._errors import (
    ConnectionFailed,
    InvalidRequest,
    InvalidResponse,
    error_from,
    error_name,
    retry_after_seconds,
)
from facefleet.sdk._models import (
    CameraRequestResult,
    CurrentAssignments,
    DeregisterResult,
    GalleryData,
    HeartbeatResult,
    Registration,
    ReleaseResult,
    Sighting,
    SightingsAccepted,
)
from facefleet.sdk._retry import RETRY_ERRORS, RetryPolicy, is_retry_status, last_outcome

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
        # Called after every successful registration, the SDK's own re-registrations
        # included: a new session, whose leases are the registration's.
        self.on_registered: Callable[[Registration], None] | None = None
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
        body = _body(
            RegisterRequest,
            worker_id=self.worker_id,
            instance_id=self.instance_id,
            hostname=self.hostname,
            version=self.version,
            capacity=self.capacity,
            labels=self.labels,
        )
        # The current session, if any, goes along: only its holder may replace a live one.
        resp = await self._send("POST", "/v1/workers/register", body)
        self.registration = _parse(resp, Registration)
        if self.on_registered is not None:
            self.on_registered(self.registration)
        return self.registration

    async def heartbeat(
        self,
        metrics: Metrics | None = None,
        streams: Sequence[StreamReport] | None = None,
        *,
        retry: RetryPolicy | None = None,
    ) -> HeartbeatResult:
        """``retry``: a tighter policy than the client's, for a loop that would rather send
        its next heartbeat than keep retrying an old one."""
        # A NaN or a lone surrogate in a metric would cost the heartbeat (a 422): sent as
        # null or U+FFFD instead.
        body: dict[str, Any] = {
            "metrics": sanitized(dict(metrics)) if metrics is not None else None
        }
        if streams is not None:
            body["streams"] = [s.model_dump(mode="json") for s in streams]
        path = self._path("/heartbeat")
        return _parse(await self._send_reregistering("POST", path, body, retry), HeartbeatResult)

    async def request_camera(self, wait: float = 0.0) -> CameraRequestResult:
        """A camera, or ``assignment=None`` with ``retry_after`` when none is free; with
        ``wait``, the control plane holds the request until one becomes free, for up to
        that many seconds (a long poll; older servers answer at once).

        Not idempotent: if a retried request was already served, the worker may hold a lease
        it was not told about; the answer's ``held`` list and every heartbeat say.
        """
        path = self._path("/camera/request" + (f"?wait={wait:g}" if wait > 0 else ""))
        timeout = self._http.timeout.read
        extra = (
            None
            if wait <= 0 or timeout is None
            else httpx.Timeout(self._http.timeout.connect, read=timeout + wait)
        )
        resp = await self._send_reregistering("POST", path, None, http_timeout=extra)
        return _parse(resp, CameraRequestResult)

    async def presence(self, silence: float) -> AsyncIterator[bytes]:
        """The presence stream: yields each byte as it arrives, ends when the control plane
        ends it; ConnectionFailed when nothing arrived for ``silence`` seconds or the
        connection broke, ApiError when it was refused (404: a server without one)."""
        headers = {"X-Worker-Session": self.session_token or ""}
        timeout = httpx.Timeout(self._http.timeout.connect, read=silence)
        try:
            async with self._http.stream(
                "GET", self._path("/presence"), headers=headers, timeout=timeout
            ) as resp:
                if resp.status_code != 200:
                    await resp.aread()
                    raise error_from(resp)
                async for chunk in resp.aiter_raw():
                    yield chunk
        except RETRY_ERRORS as exc:
            raise ConnectionFailed(f"presence: {type(exc).__name__}: {exc}") from exc

    async def current_cameras(self) -> CurrentAssignments:
        return await self._worker_call("GET", "/camera", None, CurrentAssignments)

    async def release_camera(
        self, camera_id: int, epoch: int, *, error: str | None = None
    ) -> ReleaseResult:
        """Give a camera back; with ``error``, because its stream failed (the camera is then
        failing, and offered again only after a backoff)."""
        fields: dict[str, Any] = {"camera_id": camera_id, "epoch": epoch}
        if error is not None:
            fields["error"] = error[:500]
        body = _body(ReleaseRequest, **fields)
        return await self._worker_call("POST", "/camera/release", body, ReleaseResult)

    async def deregister(self) -> DeregisterResult:
        resp = await self._send("DELETE", self._path(""))
        result = _parse(resp, DeregisterResult)
        self.registration = None
        return result

    async def signal_shutdown(self, reason: str) -> dict[str, Any]:
        body = _body(ShutdownSignal, reason=reason, source="worker")
        return _json(await self._send("POST", self._path("/shutdown/signal"), body))

    async def ack_command(
        self,
        command_id: int,
        status: AckStatus,
        result: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        path = self._path(f"/commands/{int(command_id)}/ack")
        body = _body(CommandAck, status=status, result=dict(result or {}))
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
        body = _body(SightingBatch, camera_id=camera_id, epoch=epoch, sightings=list(sightings))
        return await self._worker_call("POST", "/sightings", body, SightingsAccepted)

    # -- plumbing -----------------------------------------------------------------------

    def _path(self, suffix: str) -> str:
        return f"/v1/workers/{self.worker_id}{suffix}"

    async def _worker_call(self, method: str, suffix: str, body: Any, model: type[R]) -> R:
        return _parse(await self._send_reregistering(method, self._path(suffix), body), model)

    async def _send_reregistering(
        self,
        method: str,
        path: str,
        body: Any,
        retry: RetryPolicy | None = None,
        http_timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send; when the server no longer knows this worker, register again and resend once.

        The server forgets a worker the reaper declared offline (e.g. after a network
        partition longer than the lease TTL); the same worker_id and instance_id come back.
        """
        token = self.session_token
        resp = await self._send(method, path, body, retry=retry, http_timeout=http_timeout)
        if resp.status_code != 404 or error_name(resp) != ErrorName.worker_not_found:
            return resp
        async with self._register_lock:
            # Concurrent calls that failed together re-register once, not once each.
            if self.session_token == token:
                await self.register()
        return await self._send(method, path, body, retry=retry, http_timeout=http_timeout)

    async def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        session: bool = True,
        retry: RetryPolicy | None = None,
        http_timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        headers = {}
        if session and self.session_token:
            headers["X-Worker-Session"] = self.session_token
        policy = retry or self.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(policy.max_total),
            wait=self._wait,
            retry=retry_if_exception_type(RETRY_ERRORS) | retry_if_result(is_retry_status),
            retry_error_callback=last_outcome,
        )
        try:
            extra: dict[str, Any] = {} if http_timeout is None else {"timeout": http_timeout}
            resp: httpx.Response = await retrying(
                self._http.request, method, path, json=body, headers=headers, **extra
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


def _body(model: type[BaseModel], **fields: Any) -> dict[str, Any]:
    """A request body checked against the protocol's model before it is sent."""
    try:
        return model(**fields).model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        raise InvalidRequest(f"{model.__name__}: {exc}") from exc


def _json(resp: httpx.Response) -> dict[str, Any]:
    if not resp.is_success:
        raise error_from(resp)
    if not resp.content:
        return {}
    try:
        body = resp.json()
    except ValueError as exc:
        raise InvalidResponse(resp.status_code, "InvalidResponse", "body is not JSON") from exc
    if not isinstance(body, dict):
        raise InvalidResponse(resp.status_code, "InvalidResponse", "body is not a JSON object")
    return body


def _parse(resp: httpx.Response, model: type[R]) -> R:
    body = _json(resp)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidResponse(
            resp.status_code, "InvalidResponse", f"unexpected {model.__name__}: {exc}"
        ) from exc

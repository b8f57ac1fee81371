"""Who a request acts as: a live worker, and only with its own session."""

from __future__ import annotations

from facefleet.api.errors import Forbidden, WorkerNotFound
from facefleet.api.security import Principal, Role, hash_secret
from facefleet.api.state import AppState
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.protocol.workers import LeaseInfo


def not_registered(worker_id: str) -> WorkerNotFound:
    return WorkerNotFound(
        f"worker {worker_id!r} is not registered or was declared offline; "
        "register again with POST /v1/workers/register"
    )


def check_session(principal: Principal, worker: LiveWorker, token: str | None) -> None:
    """A worker key acts only as the worker whose session token it sends."""
    if principal.role != Role.worker:
        return
    if not token or hash_secret(token) != worker.session_hash:
        raise Forbidden(
            f"this worker key is not acting as {worker.worker_id!r}: send the session token "
            "from its registration in X-Worker-Session"
        )


async def live_worker(
    state: AppState, principal: Principal, worker_id: str, session_token: str | None
) -> LiveWorker:
    """The caller's live record; a worker key may act only with its own session."""
    worker = await state.hot.get_worker(principal.tenant_id, worker_id)
    if worker is None or not worker.is_live:
        raise not_registered(worker_id)
    check_session(principal, worker, session_token)
    return worker


def lease_infos(worker: LiveWorker, now: float) -> list[LeaseInfo]:
    valid = worker.is_live and worker.deadline > now
    expires_in = max(0.0, worker.deadline - now)
    return [
        LeaseInfo(camera_id=cid, epoch=epoch, valid=valid, expires_in=expires_in)
        for cid, epoch in sorted(worker.leases.items())
    ]

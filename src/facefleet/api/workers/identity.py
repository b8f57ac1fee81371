"""Who a request acts as: a live worker, and only with its own session."""

from __future__ import annotations

import hmac

from facefleet.api.errors import Forbidden, WorkerIdInUse, WorkerNotFound
from facefleet.api.security import Principal, Role, hash_secret
from facefleet.api.state import AppState
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.protocol.workers import LeaseInfo


def not_registered(worker_id: str) -> WorkerNotFound:
    return WorkerNotFound(
        f"worker {worker_id!r} is not registered or was declared offline; "
        "register again with POST /v1/workers/register"
    )


def holds(session_hash: str, token: str | None) -> bool:
    """Whether ``token`` is the session whose hash is stored."""
    return bool(token) and hmac.compare_digest(hash_secret(token or ""), session_hash)


def check_session(principal: Principal, worker: LiveWorker, token: str | None) -> None:
    """A worker key acts only as the worker whose session token it sends."""
    if principal.role != Role.worker:
        return
    if not holds(worker.session_hash, token):
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


def stale_in(worker: LiveWorker, now: float, suspect_after: float) -> float:
    """Seconds until the worker's session is stale (0 when it is): not live, past its
    deadline (or its presence grace), or silent for ``suspect_after``."""
    if not worker.is_live:
        return 0.0
    return max(0.0, min(worker.due - now, worker.last_seen + suspect_after - now))


def refuse_takeover(
    worker: LiveWorker, token: str | None, now: float, suspect_after: float
) -> None:
    """A live session is replaced only by its holder (who presents its token) or once it
    is stale. Nothing else a caller can know (the worker_id, its host, a process id) lets
    another process take the worker's cameras and their credentials."""
    if holds(worker.session_hash, token):
        return
    wait = stale_in(worker, now, suspect_after)
    if wait <= 0:
        return
    raise WorkerIdInUse(
        f"worker_id {worker.worker_id!r} is held by a live process on host "
        f"{worker.hostname or 'unknown'!r} (last heartbeat {now - worker.last_seen:.1f}s ago); "
        "only that process may register it again (with its X-Worker-Session) until it has "
        "been silent for a while: use another WORKER_ID or stop that process",
        retry_after=round(wait + 0.1, 2),
        holder_hostname=worker.hostname,
    )

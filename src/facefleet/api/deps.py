"""Annotated dependency aliases shared by the routers.

Every dependency is ``async def``: FastAPI runs plain functions in its thread pool, two
thread hops per heartbeat for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.exc import DBAPIError, OperationalError

from facefleet.api.errors import (
    Forbidden,
    ServiceUnavailable,
    Unauthorized,
)
from facefleet.api.rate_limits import Budget, budget_of
from facefleet.api.security import Principal, Role, hash_secret
from facefleet.api.state import AppState
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.api.tenants.service import verify_key
from facefleet.api.unit_of_work import UnitOfWork, transaction
from facefleet.api.workers.identity import live_worker
from facefleet.api.workers.paths import WORKER_ID_PATH


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.facefleet
    return state


State = Annotated[AppState, Depends(get_state)]


async def get_uow(state: State, request: Request) -> AsyncIterator[UnitOfWork]:
    # A GET only reads: it must never wait for the database's write lock.
    sessions = state.reads if request.method in ("GET", "HEAD") else state.sessions
    async with transaction(sessions, state.repairs) as uow:
        yield uow


# scope="function": the commit happens before the response is sent, so a client is never
# told "done" about a write that then fails.
Uow = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


async def get_principal(
    state: State,
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> Principal:
    route = request.scope.get("route")
    return await authenticate(state, authorization, budget_of(getattr(route, "path", None)))


async def authenticate(
    state: AppState, authorization: str | None, budget: Budget = Budget.general
) -> Principal:
    """The principal of an ``Authorization: Bearer <key>`` header; 401 without a valid one,
    429 when the key is over the ``budget`` the request is paid from."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await resolve_key(state, authorization[7:].strip())
    if principal is None:
        raise Unauthorized(
            "invalid, revoked or expired API key", headers={"WWW-Authenticate": "Bearer"}
        )
    await state.limits.spend(principal, budget)
    return principal


# How long a request waits for the re-read of a key past the auth cache time before the
# last answer serves (a slow database must not hold heartbeats up).
SLOW_VERIFY = 1.0


async def resolve_key(state: AppState, key: str) -> Principal | None:
    """The principal of an API key, from the cache or the database; None for a key that is
    unknown, revoked or expired.

    A cached key is verified again in the background once half the cache time has passed,
    so no request (a heartbeat least of all) waits for the database; past the cache time it
    is verified before it is trusted again, unless the database is slow to answer (then the
    last answer serves, as during an outage). A revocation is broadcast to every replica
    (``api/keys/propagation.py``); without the broadcast a revoked key still stops working
    within the cache time, whenever the database answers."""
    key_hash = hash_secret(key)
    cache = state.principals
    principal = cache.get(key_hash)
    if principal is None:
        principal = cache.aging(key_hash)
        known = cache.stale(key_hash)
        if principal is not None:
            cache.refresh(key_hash, lambda: _verify(state, key, key_hash))
        elif known is not None and cache.refreshing(key_hash):
            principal = known  # a re-read is under way already: the database is slow
        elif known is not None:
            reread = cache.refresh(key_hash, lambda: _verify(state, key, key_hash))
            try:
                principal = await asyncio.wait_for(asyncio.shield(reread), SLOW_VERIFY)
            except TimeoutError:
                principal = known
        else:
            principal = await _verify(state, key, key_hash)
    if principal is not None and principal.expired(state.clock()):
        return None
    return principal


async def _verify(state: AppState, key: str, key_hash: str) -> Principal | None:
    now = state.clock()
    try:
        async with state.reads() as session:
            verified = await verify_key(session, key, now=now)
    except (OperationalError, DBAPIError, ConnectionError) as exc:
        # A key verified before the outage keeps working: the hot path needs no database.
        known = state.principals.stale(key_hash)
        if known is not None:
            return known
        raise ServiceUnavailable("database unavailable: cannot verify the API key") from exc
    if verified is None:
        state.principals.forget(key_hash)  # revoked: not even trusted during an outage
        return None
    state.key_usage.seen(verified.principal.key_id, verified.last_used_at, now)
    state.principals.put(key_hash, verified.principal)
    return state.principals.bounded(verified.principal)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def require_reader(principal: CurrentPrincipal) -> Principal:
    if not principal.can_read:
        raise Forbidden(f"a {principal.role.value} key cannot read this resource")
    return principal


async def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise Forbidden(f"this operation needs an admin key, not a {principal.role.value} key")
    return principal


async def require_worker_or_admin(principal: CurrentPrincipal) -> Principal:
    return check_worker_or_admin(principal)


def check_worker_or_admin(principal: Principal) -> Principal:
    if principal.role not in (Role.worker, Role.admin):
        raise Forbidden("this operation needs a worker or admin key")
    return principal


Reader = Annotated[Principal, Depends(require_reader)]
Admin = Annotated[Principal, Depends(require_admin)]
WorkerOrAdmin = Annotated[Principal, Depends(require_worker_or_admin)]
WorkerSession = Annotated[
    str | None,
    Header(
        alias="X-Worker-Session",
        description="Session token returned by registration; required with a worker key.",
    ),
]


async def current_worker(
    worker_id: Annotated[str, WORKER_ID_PATH],
    principal: WorkerOrAdmin,
    state: State,
    session_token: WorkerSession = None,
) -> LiveWorker:
    return await live_worker(state, principal, worker_id, session_token)


# The live worker named by the path, acting with its own session (or an admin).
CurrentWorker = Annotated[LiveWorker, Depends(current_worker)]

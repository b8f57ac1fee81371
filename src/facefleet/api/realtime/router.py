"""GET /v1/workers/ws/{tenant_id}: a snapshot, then every change, in order, with sequence
numbers; reconnecting with ``since`` replays what was missed or sends a fresh snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from facefleet.api.deps import resolve_key
from facefleet.api.errors import ServiceUnavailable
from facefleet.api.events.broker import Event, EventBroker, Subscription
from facefleet.api.json_route import StrictJsonRoute
from facefleet.api.realtime.snapshot import build_snapshot
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.protocol.ids import Offset

log = logging.getLogger(__name__)
router = APIRouter(tags=["realtime"], route_class=StrictJsonRoute)

# Application close codes (4000-4999): the reason is in the close frame too.
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_SLOW_CONSUMER = 4008
CLOSE_RESYNC = 4009
# An open stream looks its key up again this often (from the auth cache, which hears of
# revocations at once): a revoked or expired key's stream is closed with 4401.
KEY_CHECK_PERIOD = 1.0


# Browsers cannot set headers on a WebSocket: they offer the key as a subprotocol
# ("facefleet.key.<key>" beside "facefleet"), which keeps it out of URLs and access logs.
SUBPROTOCOL = "facefleet"
KEY_SUBPROTOCOL = "facefleet.key."


def _offered_key(websocket: WebSocket) -> str | None:
    for offered in websocket.scope.get("subprotocols", []):
        if offered.startswith(KEY_SUBPROTOCOL):
            return str(offered[len(KEY_SUBPROTOCOL) :])
    return None


def _key(websocket: WebSocket) -> str | None:
    # Never from the query string: URLs end up in access logs, proxies and browser history.
    token = _offered_key(websocket)
    header = websocket.headers.get("authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:].strip()
    return token


async def _authorize(
    websocket: WebSocket, state: AppState, tenant_id: str, token: str | None
) -> Principal | None:
    try:
        principal = await resolve_key(state, token) if token else None
    except ServiceUnavailable:
        principal = None
    # Closing before accept() makes the server refuse the upgrade with HTTP 403.
    if principal is None:
        await websocket.close(CLOSE_UNAUTHORIZED, "missing or invalid API key")
        return None
    if principal.tenant_id != tenant_id or not principal.can_read:
        await websocket.close(CLOSE_FORBIDDEN, "this key cannot watch this tenant")
        return None
    return principal


@router.websocket("/v1/workers/ws/{tenant_id}")
async def tenant_events(
    websocket: WebSocket,
    tenant_id: str,
    since: Annotated[Offset | None, Query()] = None,
) -> None:
    state: AppState = websocket.app.state.facefleet
    key = _key(websocket)
    principal = await _authorize(websocket, state, tenant_id, key)
    if principal is None or key is None:
        return
    broker = state.events
    # Subscribe before reading the snapshot so nothing between the two is lost.
    sub = broker.subscribe(tenant_id)
    state.metrics.ws_clients.inc()
    try:
        offered = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        last = await _catch_up(websocket, state, principal, sub, since)
        await _stream(websocket, broker, sub, last, _until_key_ends(state, key))
    except WebSocketDisconnect:
        pass
    finally:
        broker.unsubscribe(sub)
        state.metrics.ws_clients.dec()


async def _catch_up(
    websocket: WebSocket,
    state: AppState,
    principal: Principal,
    sub: Subscription,
    since: int | None,
) -> int:
    broker = state.events
    if since is not None:
        missed = await broker.replay(principal.tenant_id, since)
        if missed is not None:
            for event in missed:
                await websocket.send_json(event.as_message())
            return missed[-1].seq if missed else since
    seq = await broker.current_seq(principal.tenant_id)
    snapshot = await build_snapshot(state, principal)
    await websocket.send_json({"type": "snapshot", "seq": seq, "replayed": False, "data": snapshot})
    return seq


async def _fill_gap(broker: EventBroker, tenant_id: str, last: int, seq: int) -> list[Event] | None:
    """The events between ``last`` and ``seq``, when a shared broker's delivery skipped
    some (its Redis connection dropped); None when the replay buffer no longer has them."""
    missed = await broker.replay(tenant_id, last)
    if missed is None:
        return None
    between = [e for e in missed if last < e.seq < seq]
    if [e.seq for e in between] != list(range(last + 1, seq)):
        return None
    return between


async def _until_key_ends(state: AppState, key: str) -> None:
    while True:
        await asyncio.sleep(KEY_CHECK_PERIOD)
        try:
            if await resolve_key(state, key) is None:
                return
        except ServiceUnavailable:
            continue  # the database is away: the key stays trusted, as for requests


async def _stream(
    websocket: WebSocket,
    broker: EventBroker,
    sub: Subscription,
    last: int,
    key_ends: Coroutine[Any, Any, None],
) -> None:
    receiver = asyncio.create_task(_drain_incoming(websocket))
    overflow = asyncio.create_task(sub.overflowed.wait())
    revoked = asyncio.create_task(key_ends)
    try:
        while True:
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait(
                {getter, receiver, overflow, revoked}, return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                getter.cancel()
            if revoked in done:
                await websocket.close(CLOSE_UNAUTHORIZED, "the API key was revoked or expired")
                return
            if overflow in done:
                if sub.ended is not None:
                    await websocket.close(CLOSE_RESYNC, f"{sub.ended}; reconnect with since={last}")
                else:
                    await websocket.close(
                        CLOSE_SLOW_CONSUMER,
                        f"too slow: event queue overflowed; reconnect with since={last}",
                    )
                return
            if receiver in done:
                return
            event = getter.result()
            if event.seq <= last:
                continue  # already covered by the snapshot or the replay
            if event.seq > last + 1:
                between = await _fill_gap(broker, sub.tenant_id, last, event.seq)
                if between is None:
                    await websocket.close(
                        CLOSE_RESYNC, f"events were missed; reconnect with since={last}"
                    )
                    return
                for missed in between:
                    await websocket.send_json(missed.as_message())
            await websocket.send_json(event.as_message())
            last = event.seq
    finally:
        for task in (receiver, overflow, revoked):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _drain_incoming(websocket: WebSocket) -> None:
    """Clients only listen; reading keeps disconnects visible (and pings answered)."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

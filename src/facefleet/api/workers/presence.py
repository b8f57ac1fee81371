"""``GET /v1/workers/{worker_id}/presence``: a worker's presence channel.

The worker keeps one of these open at all times. The control plane sends a byte every
``presence_beat`` seconds for ``presence_wait`` seconds, then ends it and the worker opens the
next. When the stream breaks off instead, the worker is gone or cut off:

- a process that dies has its socket closed by its kernel, so the control plane learns it at
  once and expires the worker ``presence_grace`` later (unless a new stream or a heartbeat
  arrives first), instead of a whole lease TTL after its last heartbeat;
- the worker, seeing no byte for a while (its stream broke, or a load balancer cut it off
  without telling), fences itself before that grace ends: safety still rests on the fence and
  the epochs, never on the control plane guessing right.

A frozen or partitioned host keeps its connection open: that costs the lease TTL, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from asyncio import FIRST_COMPLETED

from fastapi import APIRouter
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from facefleet.api.deps import CurrentWorker, State
from facefleet.api.errors import Forbidden, NotFound
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import StrictJsonRoute
from facefleet.api.state import AppState
from facefleet.api.storage.hot.base import LiveWorker

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/workers", tags=["workers"], route_class=StrictJsonRoute)
BEAT = b"."
GOODBYE = b"!"  # this replica is stopping: not a loss
ALARM_SLACK = 0.02


class PresenceStream(Response):
    media_type = "text/plain"

    def __init__(self, state: AppState, worker: LiveWorker) -> None:
        super().__init__(media_type=self.media_type, headers={"Cache-Control": "no-store"})
        # Streamed: no length.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.state = state
        self.worker = worker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state, worker = self.state, self.worker
        settings = state.settings
        token = uuid.uuid4().hex
        await state.hot.presence_open(worker.tenant_id, worker.worker_id, token, now=state.clock())
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        gone = asyncio.ensure_future(_disconnected(receive))
        stopping = asyncio.ensure_future(state.stopping.wait())
        loop = asyncio.get_running_loop()
        ends = loop.time() + settings.presence_wait
        try:
            while loop.time() < ends and not gone.done() and not stopping.done():
                await send({"type": "http.response.body", "body": BEAT, "more_body": True})
                await asyncio.wait(
                    {gone, stopping}, timeout=settings.presence_beat, return_when=FIRST_COMPLETED
                )
            if not gone.done():
                # Renewed, or this replica stops on purpose: the goodbye tells the worker
                # not to count the end as a loss.
                last = GOODBYE if stopping.done() else b""
                await send({"type": "http.response.body", "body": last, "more_body": False})
                return
        finally:
            for waiter in (gone, stopping):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
        # The client went away mid-stream: its process died, or its connection was cut.
        await state.hot.presence_lost(
            worker.tenant_id,
            worker.worker_id,
            token,
            now=state.clock(),
            grace=settings.presence_grace,
        )
        # The grace is timed on the control plane's clock, the alarm on the event loop's: a
        # pass a little late is sure to find the worker expired.
        state.reaper_alarm.after(settings.presence_grace + ALARM_SLACK)
        log.info(
            "presence of %s/%s broke off; it expires in %.1fs unless it comes back",
            worker.tenant_id,
            worker.worker_id,
            settings.presence_grace,
        )


async def _disconnected(receive: Receive) -> Message:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return message


@router.get(
    "/{worker_id}/presence",
    response_class=PresenceStream,
    status_code=200,
    responses=_errors(Forbidden, NotFound)
    | {200: {"content": {"text/plain": {}}, "description": "A byte every presence_beat."}},
    summary="The worker's presence channel: a stream that breaks off when its process dies",
)
async def presence(live: CurrentWorker, state: State) -> PresenceStream:
    return PresenceStream(state, live)

"""Idle workers waiting on a long-poll camera request, woken the moment a camera may be free.

A camera request may wait (``?wait=``) instead of being told to ask again later. While any
worker of a tenant waits here, this replica follows the tenant's events (from every replica,
through the event broker): each camera released, added or changed wakes the worker that has
waited longest and is not awake already, which tries to claim it; if it leaves without one
(nothing fits it, or it is stopping), it passes the turn to the next one, so a turn is never
lost with a waiter that could not use it. Waiters also look again every ``recheck`` seconds,
for what no event announces (a hold or a failing camera's backoff running out). Between
replicas the database decides: the first claim wins, and the others keep waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from facefleet.api.events.broker import EventBroker

# Events after which a camera may be free for someone.
WAKING = frozenset({"camera_released", "camera_added", "camera_updated"})


@dataclass(order=True)
class Waiter:
    since: int  # arrival order: longest waiting first
    worker_id: str = field(compare=False)
    woken: asyncio.Event = field(default_factory=asyncio.Event, compare=False)
    # Woken and not done with it: a camera may be free that this waiter has not claimed.
    turn: bool = field(default=False, compare=False)


@dataclass
class _Tenant:
    waiters: list[Waiter] = field(default_factory=list)
    listener: asyncio.Task[None] | None = None


class CameraWaiters:
    def __init__(self, events: EventBroker) -> None:
        self._events = events
        self._tenants: dict[str, _Tenant] = {}
        self._order = itertools.count()

    def waiting(self, tenant_id: str) -> int:
        tenant = self._tenants.get(tenant_id)
        return len(tenant.waiters) if tenant else 0

    @contextlib.asynccontextmanager
    async def queued(self, tenant_id: str, worker_id: str) -> AsyncIterator[Waiter]:
        """A place in the tenant's queue for as long as the block runs. A waiter leaving with
        a turn it did not use (``Waiter.turn``) hands it to the next one."""
        tenant = self._tenants.setdefault(tenant_id, _Tenant())
        waiter = Waiter(next(self._order), worker_id)
        tenant.waiters.append(waiter)
        if tenant.listener is None or tenant.listener.done():
            tenant.listener = asyncio.create_task(self._listen(tenant_id, tenant))
        try:
            yield waiter
        finally:
            if waiter.turn or waiter.woken.is_set():
                self.pass_on(tenant_id, waiter)
            tenant.waiters.remove(waiter)
            if not tenant.waiters and tenant.listener is not None:
                tenant.listener.cancel()
                self._tenants.pop(tenant_id, None)

    async def wait(self, waiter: Waiter, timeout: float) -> bool:  # noqa: ASYNC109
        """Until woken or ``timeout``; True when woken."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await waiter.woken.wait()
        woken = waiter.woken.is_set()
        waiter.woken.clear()
        waiter.turn = waiter.turn or woken
        return woken

    def pass_on(self, tenant_id: str, waiter: Waiter) -> None:
        """``waiter`` was woken but takes nothing: the next one not awake tries."""
        waiter.turn = False
        tenant = self._tenants.get(tenant_id)
        if tenant is not None:
            self._wake_first(w for w in tenant.waiters if w.since > waiter.since)

    def done(self, waiter: Waiter) -> None:
        """``waiter`` used its turn (it claimed a camera)."""
        waiter.turn = False
        waiter.woken.clear()

    def wake(self, tenant_id: str) -> None:
        """One camera may be free: the longest waiting that is not awake already tries."""
        tenant = self._tenants.get(tenant_id)
        if tenant is not None:
            self._wake_first(tenant.waiters)

    @staticmethod
    def _wake_first(candidates: Iterable[Waiter]) -> None:
        asleep = [w for w in candidates if not w.woken.is_set() and not w.turn]
        if asleep:
            min(asleep).woken.set()

    async def _listen(self, tenant_id: str, tenant: _Tenant) -> None:
        while True:
            subscription = self._events.subscribe(tenant_id)
            try:
                while not subscription.overflowed.is_set():
                    event = await subscription.queue.get()
                    if event.kind in WAKING:
                        self.wake(tenant_id)
            finally:
                self._events.unsubscribe(subscription)
            # Events were missed (a burst, or the broker's log restarted): look again.
            for waiter in tenant.waiters:
                waiter.woken.set()

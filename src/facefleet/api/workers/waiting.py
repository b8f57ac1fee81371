"""Idle workers waiting on a long-poll camera request, woken the moment a camera may be free.

A camera request may wait (``?wait=``) instead of being told to ask again later. While any
worker of a tenant waits here, this replica follows the tenant's events (from every replica,
through the event broker): a camera released, added or changed wakes the worker that has
waited longest, which tries to claim it; if it finds nothing that fits it passes the turn to
the next one. Waiters also look again every ``recheck`` seconds, for what no event announces
(a hold or a failing camera's backoff running out). Between replicas the database decides:
the first claim wins, and the others keep waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from facefleet.api.events.broker import EventBroker

# Events after which a camera may be free for someone.
WAKING = frozenset({"camera_released", "camera_added", "camera_updated"})


@dataclass(order=True)
class Waiter:
    since: int  # arrival order: longest waiting first
    worker_id: str = field(compare=False)
    woken: asyncio.Event = field(default_factory=asyncio.Event, compare=False)


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
        """A place in the tenant's queue for as long as the block runs."""
        tenant = self._tenants.setdefault(tenant_id, _Tenant())
        waiter = Waiter(next(self._order), worker_id)
        tenant.waiters.append(waiter)
        if tenant.listener is None or tenant.listener.done():
            tenant.listener = asyncio.create_task(self._listen(tenant_id, tenant))
        try:
            yield waiter
        finally:
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
        return woken

    def pass_on(self, tenant_id: str, waiter: Waiter) -> None:
        """``waiter`` was woken but found nothing it can take: the next one tries."""
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            return
        later = [w for w in sorted(tenant.waiters) if w.since > waiter.since]
        if later:
            later[0].woken.set()

    def wake(self, tenant_id: str) -> None:
        tenant = self._tenants.get(tenant_id)
        if tenant and tenant.waiters:
            min(tenant.waiters).woken.set()

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

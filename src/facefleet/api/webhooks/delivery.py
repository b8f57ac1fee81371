"""Sending webhook deliveries: one signed POST per attempt, retries with exponential backoff
and jitter, dead letters after the last attempt.

The leader sends every replica's deliveries (they are rows in the database, so a restart
loses none). Each delivery is its own task, so a slow receiver holds up only itself; at
most ``webhook_concurrency`` are in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from facefleet import __version__
from facefleet.api.background.leader import Leadership
from facefleet.api.background.loops import outage
from facefleet.api.clock import to_datetime
from facefleet.api.config import Settings
from facefleet.api.integrations.payloads import iso
from facefleet.api.state import AppState
from facefleet.api.storage.db import outbox_repo, webhooks_repo
from facefleet.api.storage.db.models import OutboxEvent, WebhookAttempt, WebhookDelivery
from facefleet.api.webhooks import signing

log = logging.getLogger(__name__)

EXCERPT = 500
PRUNE_EVERY = 600.0


def body_of(event: OutboxEvent, tenant_name: str) -> bytes:
    """The JSON body of every delivery of ``event`` (the same bytes on every attempt)."""
    envelope = {
        "id": event.event_id,
        "type": event.kind,
        "occurred_at": iso(event.occurred_at),
        "tenant": {"id": event.tenant_id, "name": tenant_name},
        "data": event.data,
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Outcome:
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float
    excerpt: str
    retry_after: float | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


async def send(
    http: httpx.AsyncClient,
    *,
    url: str,
    secret: str,
    body: bytes,
    event: OutboxEvent,
    delivery_id: int,
    attempt: int,
) -> Outcome:
    """One signed POST; never raises for what the receiver or the network does."""
    now = time.time()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"facefleet-webhooks/{__version__}",
        "X-Facefleet-Event": event.kind,
        "X-Facefleet-Event-Id": event.event_id,
        "X-Facefleet-Delivery": str(delivery_id),
        "X-Facefleet-Attempt": str(attempt),
        signing.HEADER: signing.sign(secret, int(now), body),
    }
    started = time.perf_counter()
    try:
        resp = await http.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Outcome(
            to_datetime(now),
            None,
            f"{type(exc).__name__}: {exc}"[:EXCERPT] or type(exc).__name__,
            (time.perf_counter() - started) * 1000,
            "",
            None,
        )
    elapsed = (time.perf_counter() - started) * 1000
    error = None if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"
    return Outcome(
        to_datetime(now),
        resp.status_code,
        error,
        elapsed,
        resp.text[:EXCERPT],
        _retry_after(resp),
    )


def backoff(settings: Settings, attempts: int, retry_after: float | None) -> float:
    """Seconds before the attempt after ``attempts`` failed ones: doubling, jittered, capped;
    never sooner than a receiver's Retry-After."""
    delay: float = settings.webhook_retry_base * 2.0 ** max(0, attempts - 1)
    delay = min(settings.webhook_retry_max, delay) * random.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, settings.webhook_retry_max)


def apply(settings: Settings, delivery: WebhookDelivery, outcome: Outcome) -> WebhookAttempt:
    """Record ``outcome`` on ``delivery`` (delivered, retried later, or dead) and return the
    delivery-log row of the attempt."""
    delivery.attempts += 1
    delivery.last_attempt_at = outcome.at
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    if outcome.ok:
        delivery.status = "delivered"
        delivery.delivered_at = outcome.at
    elif delivery.attempts >= settings.webhook_max_attempts:
        delivery.status = "dead"
    else:
        delivery.next_attempt_at = outcome.at + timedelta(
            seconds=backoff(settings, delivery.attempts, outcome.retry_after)
        )
    return WebhookAttempt(
        delivery_id=delivery.id,
        attempted_at=outcome.at,
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=round(outcome.duration_ms, 3),
        response_excerpt=outcome.excerpt,
    )


def client(settings: Settings) -> httpx.AsyncClient:
    # Redirects are not followed: a signed delivery goes only where it was subscribed.
    return httpx.AsyncClient(timeout=settings.webhook_timeout, follow_redirects=False)


class WebhookDeliverer:
    def __init__(self, state: AppState, leadership: Leadership, wake: asyncio.Event) -> None:
        self.state = state
        self.settings = state.settings
        self.leadership = leadership
        self._wake = wake
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._next_prune = 0.0

    async def run(self) -> None:
        async with client(self.settings) as http:
            try:
                while True:
                    if self.leadership.leading() and await self.leadership.confirm():
                        try:
                            await self.run_once(http)
                            await self._prune()
                        except Exception as exc:
                            reason = outage(exc)
                            if reason is None:
                                log.exception("webhook delivery pass failed")
                            else:
                                log.warning("webhook delivery paused: %s is unavailable", reason)
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._wake.wait(), self.settings.integrations_poll_period
                        )
            finally:
                for task in self._inflight.values():
                    task.cancel()
                await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def run_once(self, http: httpx.AsyncClient) -> int:
        """Start the due deliveries there is room for; how many were started."""
        free = self.settings.webhook_concurrency - len(self._inflight)
        if free <= 0:
            return 0
        async with self.state.sessions() as session:
            due = await webhooks_repo.due(
                session, to_datetime(time.time()), free + len(self._inflight)
            )
        started = 0
        for delivery, endpoint, event, tenant in due:
            if delivery.id in self._inflight or started >= free:
                continue
            task = asyncio.create_task(
                self._deliver(http, delivery.id, endpoint.url, endpoint.secret, event, tenant)
            )
            self._inflight[delivery.id] = task
            task.add_done_callback(functools.partial(self._finished, delivery.id))
            started += 1
        return started

    def _finished(self, delivery_id: int, _: asyncio.Task[None]) -> None:
        self._inflight.pop(delivery_id, None)
        self._wake.set()  # a slot is free

    async def _deliver(
        self,
        http: httpx.AsyncClient,
        delivery_id: int,
        url: str,
        secret: str,
        event: OutboxEvent,
        tenant: str,
    ) -> None:
        try:
            # No transaction stays open while the receiver answers (SQLite has one writer).
            async with self.state.sessions() as session:
                delivery = await session.get(WebhookDelivery, delivery_id)
                if delivery is None or delivery.status != "pending":
                    return
                attempt = delivery.attempts + 1
            if not self.leadership.leading():
                return
            outcome = await send(
                http,
                url=url,
                secret=secret,
                body=body_of(event, tenant),
                event=event,
                delivery_id=delivery_id,
                attempt=attempt,
            )
            async with self.state.sessions() as session:
                delivery = await session.get(WebhookDelivery, delivery_id)
                if delivery is None or delivery.status != "pending":
                    return  # its endpoint was deleted meanwhile
                session.add(apply(self.settings, delivery, outcome))
                await session.commit()
            label = delivery.status if delivery.status != "pending" else "retry"
            self.state.metrics.webhook_attempts.labels(label).inc()
            if delivery.status == "dead":
                log.warning(
                    "webhook delivery %d (%s) is a dead letter after %d attempts: %s",
                    delivery_id,
                    event.kind,
                    delivery.attempts,
                    outcome.error,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "webhook delivery %d not recorded (%s); it will be attempted again",
                delivery_id,
                outage(exc) or type(exc).__name__,
            )

    async def _prune(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY
        before = to_datetime(time.time() - self.settings.integrations_retention_days * 86400)
        async with self.state.sessions() as session:
            removed = await outbox_repo.prune(session, before)
            await session.commit()
        if removed:
            log.info("pruned %d sent integration events", removed)

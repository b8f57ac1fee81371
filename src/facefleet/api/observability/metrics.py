"""Prometheus metrics of one control-plane app, and the middleware that times HTTP requests.

Each app owns its own ``CollectorRegistry``: the default global registry would refuse the
second app a process creates (tests create many) and would mix their numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facefleet.api.storage.hot.base import HotStore
from facefleet.protocol.enums import WorkerStatus

UNMATCHED_ROUTE = "unmatched"
LOOP_PROBE_PERIOD = 0.1
# Any other method is labelled "other": the label value comes from the client.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.workers = Gauge(
            "facefleet_workers",
            "Workers in the hot store by status, counted when /metrics is scraped.",
            ["status"],
            registry=r,
        )
        self.heartbeats = Counter("facefleet_heartbeats", "Heartbeats accepted.", registry=r)
        self.assignments = Counter(
            "facefleet_camera_assignments", "Cameras assigned to workers.", registry=r
        )
        self.assignment_latency = Histogram(
            "facefleet_camera_assignment_seconds",
            "Time from a camera request to its committed assignment.",
            registry=r,
        )
        self.leases_expired = Counter(
            "facefleet_leases_expired",
            "Leases the reaper released: their worker went silent or overran its stop deadline.",
            registry=r,
        )
        self.cameras = Gauge(
            "facefleet_cameras",
            "Cameras by processing state (disabled, unassigned, failing, starting, streaming, "
            "stalled), as the leader last saw them.",
            ["state"],
            registry=r,
        )
        self.camera_unprocessed_seconds = Counter(
            "facefleet_camera_unprocessed_seconds",
            "Camera-seconds in which an enabled camera was not being processed (unassigned, "
            "failing, starting or stalled).",
            registry=r,
        )
        self.repairs = Counter(
            "facefleet_hot_store_repairs",
            "Workers whose hot record the anti-entropy pass brought back in line with the "
            "database (a write-through that failed, or drift).",
            registry=r,
        )
        self.ws_clients = Gauge(
            "facefleet_websocket_clients", "Connected WebSocket clients.", registry=r
        )
        self.event_drops = Counter(
            "facefleet_event_queue_drops",
            "Events dropped because a subscriber's queue was full.",
            registry=r,
        )
        self.legacy_calls = Counter(
            "facefleet_legacy_route_calls",
            "Calls to deprecated pre-consolidation routes, by old path template.",
            ["path"],
            registry=r,
        )
        self.integration_record_failures = Counter(
            "facefleet_integration_record_failures",
            "Events that could not be written to the integrations' outbox (database down).",
            registry=r,
        )
        self.mqtt_messages = Counter(
            "facefleet_mqtt_messages_published",
            "MQTT messages the broker acknowledged, by kind of topic.",
            ["topic"],
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "facefleet_mqtt_connected",
            "1 while this replica is connected to the MQTT broker (only the leader connects).",
            registry=r,
        )
        self.webhook_attempts = Counter(
            "facefleet_webhook_attempts",
            "Webhook POSTs by outcome (delivered, retry, dead).",
            ["outcome"],
            registry=r,
        )
        self.http_latency = Histogram(
            "facefleet_http_request_duration_seconds",
            "HTTP request latency by method, route template and status class.",
            ["method", "route", "status_class"],
            registry=r,
        )

        self.loop_lag = Histogram(
            "facefleet_event_loop_lag_seconds",
            "How late the event loop ran a timer due every "
            f"{LOOP_PROBE_PERIOD}s: a stall delays every request in flight.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )

        self.gc_pause = Histogram(
            "facefleet_gc_pause_seconds",
            "Garbage collections of this process and how long each stopped it, by generation.",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self._gc_timers = [self.gc_pause.labels(generation=str(g)) for g in range(3)]
        self._gc_started = 0.0
        self._request_timers: dict[tuple[str, str, int], Histogram] = {}

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self._gc_timers[info["generation"]].observe(time.perf_counter() - self._gc_started)

    @contextlib.contextmanager
    def watching_gc(self) -> Iterator[None]:
        """Time the process's garbage collections while the app runs: a full collection
        of a large fleet's records stops every request."""
        gc.callbacks.append(self._on_gc)
        try:
            yield
        finally:
            gc.callbacks.remove(self._on_gc)

    def request_timer(self, method: str, route: str, status_class: int) -> Histogram:
        """The latency series of one label set, looked up once (labels() costs a heartbeat
        a few percent); the label values are bounded: known methods and route templates."""
        key = (method, route, status_class)
        timer = self._request_timers.get(key)
        if timer is None:
            timer = self.http_latency.labels(
                method=method, route=route, status_class=f"{status_class}xx"
            )
            self._request_timers[key] = timer
        return timer

    async def probe_loop_lag(self) -> None:
        """Runs for the app's lifetime, timing the event loop's own delays."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LOOP_PROBE_PERIOD
            await asyncio.sleep(LOOP_PROBE_PERIOD)
            self.loop_lag.observe(max(0.0, loop.time() - due))

    async def refresh_workers(self, hot: HotStore) -> None:
        """Recount workers by status; every status is exported, zero included."""
        # A shared hot store gives every replica the whole fleet: aggregate with max, not sum.
        counts = Tally(w.status for w in await hot.list_workers())
        for status in WorkerStatus:
            self.workers.labels(status=status.value).set(counts.get(status, 0))


def metrics_of(scope: Scope) -> Metrics | None:
    """The app's metrics once its lifespan has created the state, else None."""
    app = scope.get("app")
    state = getattr(getattr(app, "state", None), "facefleet", None)
    metrics = getattr(state, "metrics", None)
    return metrics if isinstance(metrics, Metrics) else None


def route_template(scope: Scope) -> str:
    # The template, not the concrete path: one series per route, whatever the worker ids.
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class HttpMetricsMiddleware:
    """Records each HTTP request's latency under its matched route's path template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            metrics = metrics_of(scope)
            if metrics is not None:
                metrics.request_timer(
                    method if method in KNOWN_METHODS else "other",
                    route_template(scope),
                    status // 100,
                ).observe(time.perf_counter() - started)

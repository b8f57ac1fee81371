"""create_app() and the lifespan that owns engines, the hot store and background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI

from facefleet import __version__
from facefleet.api.backends import build_backend
from facefleet.api.background.anti_entropy import repair_pending
from facefleet.api.background.flusher import Flusher
from facefleet.api.background.leader import when_leading
from facefleet.api.background.loops import every
from facefleet.api.background.reaper import Reaper
from facefleet.api.background.recovery import rebuild_hot_store
from facefleet.api.body_limit import BodyLimitMiddleware
from facefleet.api.bootstrap import ensure_default_tenant
from facefleet.api.cameras.router import router as cameras_router
from facefleet.api.cameras.tracker import CameraStateTracker
from facefleet.api.config import Settings
from facefleet.api.dashboard import router as dashboard_router
from facefleet.api.database import open_database, prepare
from facefleet.api.errors import document_body_limit, install_error_handlers
from facefleet.api.events.tapped import TappedBroker
from facefleet.api.gc_tuning import tuned_collector
from facefleet.api.health.router import router as health_router
from facefleet.api.integrations.recorder import EventRecorder
from facefleet.api.keys.propagation import follow_key_ends
from facefleet.api.keys.router import router as keys_router
from facefleet.api.log_redaction import install_redaction
from facefleet.api.mqtt.publisher import MqttPublisher
from facefleet.api.observability.metrics import HttpMetricsMiddleware, Metrics
from facefleet.api.observability.router import router as metrics_router
from facefleet.api.people.router import router as people_router
from facefleet.api.realtime.router import router as realtime_router
from facefleet.api.request_ids import RequestIdMiddleware
from facefleet.api.security import PrincipalCache
from facefleet.api.sightings.retention import PERIOD as RETENTION_PERIOD
from facefleet.api.sightings.retention import RetentionPruner
from facefleet.api.sightings.router import router as sightings_router
from facefleet.api.state import AppState
from facefleet.api.storage.db.engine import create_sessionmaker
from facefleet.api.strangers.clusterer import StrangerClusterer
from facefleet.api.strangers.router import router as strangers_router
from facefleet.api.tenants.router import router as tenants_router
from facefleet.api.webhooks.delivery import WebhookDeliverer
from facefleet.api.webhooks.router import router as webhooks_router
from facefleet.api.workers import heartbeat_route, presence
from facefleet.api.workers.legacy import router as legacy_router
from facefleet.api.workers.router import router as workers_router

log = logging.getLogger(__name__)

# Operators see coalesced liveness at most this often.
DIGEST_PERIOD = 1.0


SHUTDOWN_STEP_SECONDS = 5.0


async def _bounded(step: Awaitable[object], what: str) -> None:
    try:
        async with asyncio.timeout(SHUTDOWN_STEP_SECONDS):
            await step
    except Exception as exc:
        log.warning("shutdown: %s did not finish (%s: %s)", what, type(exc).__name__, exc)


def is_upload_path(path: str) -> bool:
    """Photo uploads may be larger than every other request body."""
    return path == "/v1/recognize" or (path.startswith("/v1/people/") and path.endswith("/faces"))


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], float] | None = None
) -> FastAPI:
    """The control plane; ``clock`` (wall time in seconds) is replaceable for tests."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = open_database(settings)
        try:
            await prepare(engine)
        except BaseException:
            await engine.dispose()
            raise
        metrics = Metrics()
        backend = build_backend(settings, on_event_drop=metrics.event_drops.inc)
        await backend.start()
        hot = backend.hot
        sessions = create_sessionmaker(engine)
        # Every event an integration takes is written to the outbox by the replica that
        # published it; the leader sends it (MQTT, webhooks).
        recorder = EventRecorder(
            sessions, create_sessionmaker(engine, read_only=True), settings, metrics
        )
        state = AppState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            hot=hot,
            principals=PrincipalCache(settings.auth_cache_seconds),
            clock=clock or backend.clock,
            rate_clock=backend.clock,
            metrics=metrics,
            events=TappedBroker(backend.events, recorder),
        )
        app.state.facefleet = state
        follow_key_ends(state)
        recorder.start()
        await state.events.start()
        if settings.bootstrap_default_tenant:
            await ensure_default_tenant(state)
        leadership = backend.leadership if settings.run_background else None
        state.election = backend.leadership
        state.leader_requests = backend.requests
        state.reaper = Reaper(state, leadership, backend.requests)
        if leadership is None or await leadership.vacant():
            # No replica was running: a shared hot store kept records whose workers could
            # not heartbeat meanwhile; they get the same grace as those restored below.
            kept = await hot.extend_grace(now=state.clock(), ttl=settings.lease_ttl)
            if kept:
                log.info("%d live workers kept with %.1fs of grace", kept, settings.lease_ttl)
        restored = await rebuild_hot_store(state)
        if restored:
            log.info("restored %d live workers with %.1fs of grace", restored, settings.lease_ttl)
        flusher = Flusher(state, leadership)

        tracker = CameraStateTracker(state)

        async def publish_digest() -> None:
            await state.digest.publish(state.clock())
            await tracker.run_once()

        tasks = [asyncio.create_task(metrics.probe_loop_lag())]
        tasks += [asyncio.create_task(loop) for loop in backend.loops()]
        mqtt: MqttPublisher | None = None
        if leadership is not None:
            deliverer = WebhookDeliverer(state, leadership, recorder.wake.webhooks)
            tasks.append(asyncio.create_task(deliverer.run(), name="webhook deliveries"))
            if settings.mqtt_url:
                mqtt = MqttPublisher(state, leadership, recorder.wake.mqtt, settings.mqtt_url)
                tasks.append(mqtt.start())
        if leadership is not None:
            reaper = state.reaper
            pruner = RetentionPruner(state, leadership)
            tasks += [
                asyncio.create_task(StrangerClusterer(state, leadership).run_forever()),
                asyncio.create_task(
                    every(
                        RETENTION_PERIOD,
                        when_leading(leadership, pruner.run_once, "retention pruner"),
                        "retention pruner",
                    )
                ),
                asyncio.create_task(leadership.run()),
                asyncio.create_task(
                    every(
                        settings.reaper_period,
                        when_leading(leadership, reaper.run_once, "reaper"),
                        "reaper",
                        state.reaper_alarm,
                    )
                ),
                asyncio.create_task(every(settings.flush_period, flusher.run_once, "flusher")),
                # Every replica repairs the hot records its own failed writes left behind.
                asyncio.create_task(
                    every(settings.reaper_period, lambda: repair_pending(state), "repairs")
                ),
                asyncio.create_task(
                    every(
                        DIGEST_PERIOD,
                        when_leading(leadership, publish_digest, "stats digest"),
                        "stats digest",
                    )
                ),
            ]
        try:
            with metrics.watching_gc(), tuned_collector():
                yield
        finally:
            if mqtt is not None:
                # Before the leader lock is released: "offline" must precede a successor's
                # "online" on the availability topic.
                await _bounded(mqtt.stop(), "MQTT publisher")
            for task in tasks:
                task.cancel()
            await _bounded(asyncio.gather(*tasks, return_exceptions=True), "background loops")
            # Each step is bounded: an unreachable Redis or database must not keep a
            # stopping process alive.
            await _bounded(flusher.run_once(), "final write-behind flush")
            await _bounded(recorder.close(), "integrations outbox")
            await _bounded(state.key_usage.close(), "keys' last use")
            if leadership is not None:
                await _bounded(leadership.release(), "leader lock release")
            await _bounded(state.events.close(), "event broker close")
            await _bounded(state.hot.close(), "hot store close")
            await _bounded(engine.dispose(), "database engine close")

    app = FastAPI(
        title="facefleet",
        version=__version__,
        description="Control plane of a face-recognition camera fleet.",
        lifespan=lifespan,
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
    )
    install_error_handlers(app)
    install_redaction()
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        upload_max_bytes=settings.max_upload_request_bytes,
        upload_paths=is_upload_path,
    )
    # Refused bodies and unhandled errors are timed too.
    app.add_middleware(HttpMetricsMiddleware)
    # Outermost: every answer, an unhandled error's included, carries its request id.
    app.add_middleware(RequestIdMiddleware)
    # The heartbeat first: most requests are heartbeats, and routes are matched in order.
    app.include_router(heartbeat_route.router)
    app.include_router(workers_router)
    app.include_router(presence.router)
    app.include_router(realtime_router)
    app.include_router(cameras_router)
    app.include_router(people_router)
    app.include_router(tenants_router)
    app.include_router(keys_router)
    app.include_router(sightings_router)
    app.include_router(webhooks_router)
    app.include_router(strangers_router)
    app.include_router(legacy_router)
    app.include_router(heartbeat_route.legacy_router)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(dashboard_router)
    heartbeat_route.answer_first(app)
    document_body_limit(app)
    return app

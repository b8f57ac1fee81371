"""create_app() and the lifespan that owns engines, the hot store and background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from facefleet import __version__
from facefleet.api.background.flusher import Flusher
from facefleet.api.background.loops import every
from facefleet.api.background.reaper import Reaper
from facefleet.api.background.recovery import rebuild_hot_store
from facefleet.api.body_limit import BodyLimitMiddleware
from facefleet.api.bootstrap import ensure_default_tenant
from facefleet.api.cameras.router import router as cameras_router
from facefleet.api.config import Settings
from facefleet.api.errors import install_error_handlers
from facefleet.api.health.router import router as health_router
from facefleet.api.observability.metrics import HttpMetricsMiddleware, Metrics
from facefleet.api.observability.router import router as metrics_router
from facefleet.api.people.router import router as people_router
from facefleet.api.realtime.events import MemoryEventBroker
from facefleet.api.realtime.router import router as realtime_router
from facefleet.api.security import PrincipalCache
from facefleet.api.sightings.router import router as sightings_router
from facefleet.api.state import AppState
from facefleet.api.storage.db.engine import create_engine, create_sessionmaker
from facefleet.api.storage.db.migrate import upgrade
from facefleet.api.storage.hot.base import HotStore
from facefleet.api.storage.hot.memory import MemoryHotStore
from facefleet.api.workers.legacy import router as legacy_router
from facefleet.api.workers.router import router as workers_router

log = logging.getLogger(__name__)

# Operators see coalesced liveness at most this often.
DIGEST_PERIOD = 1.0


def is_upload_path(path: str) -> bool:
    """Photo uploads may be larger than every other request body."""
    return path == "/v1/recognize" or (path.startswith("/v1/people/") and path.endswith("/faces"))


def create_hot_store(settings: Settings) -> HotStore:
    if settings.redis_url:
        raise NotImplementedError("the Redis hot store is not available in this version")
    return MemoryHotStore()


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], float] | None = None
) -> FastAPI:
    """The control plane; ``clock`` (wall time in seconds) is replaceable for tests."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.resolved_database_url)
        await upgrade(engine)
        metrics = Metrics()
        state = AppState(
            settings=settings,
            engine=engine,
            sessions=create_sessionmaker(engine),
            hot=create_hot_store(settings),
            principals=PrincipalCache(settings.auth_cache_seconds),
            clock=clock or time.time,
            metrics=metrics,
            events=MemoryEventBroker(on_drop=metrics.event_drops.inc),
        )
        app.state.facefleet = state
        if settings.bootstrap_default_tenant:
            await ensure_default_tenant(state)
        restored = await rebuild_hot_store(state)
        if restored:
            log.info("restored %d live workers with %.1fs of grace", restored, settings.lease_ttl)
        flusher = Flusher(state)

        async def publish_digest() -> None:
            await state.digest.publish(state.clock())

        tasks: list[asyncio.Task[None]] = []
        if settings.run_background:
            tasks = [
                asyncio.create_task(
                    every(settings.reaper_period, Reaper(state).run_once, "reaper")
                ),
                asyncio.create_task(every(settings.flush_period, flusher.run_once, "flusher")),
                asyncio.create_task(every(DIGEST_PERIOD, publish_digest, "stats digest")),
            ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await flusher.run_once()
            await state.hot.close()
            await engine.dispose()

    app = FastAPI(
        title="facefleet",
        version=__version__,
        description="Control plane of a face-recognition camera fleet.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        upload_max_bytes=settings.max_upload_request_bytes,
        upload_paths=is_upload_path,
    )
    # Outermost, so refused bodies and unhandled errors are timed too.
    app.add_middleware(HttpMetricsMiddleware)
    app.include_router(workers_router)
    app.include_router(realtime_router)
    app.include_router(cameras_router)
    app.include_router(people_router)
    app.include_router(sightings_router)
    app.include_router(legacy_router)
    app.include_router(health_router)
    app.include_router(metrics_router)
    return app

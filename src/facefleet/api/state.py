"""The typed state the lifespan creates and every request reaches through ``deps``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from facefleet.api.background.alarm import Alarm
from facefleet.api.config import Settings
from facefleet.api.events.broker import EventBroker, MemoryEventBroker
from facefleet.api.events.digest import StatsDigest
from facefleet.api.events.snapshot_cache import SnapshotCache
from facefleet.api.keys.usage import KeyUsage
from facefleet.api.observability.metrics import Metrics
from facefleet.api.rate_limits import RateLimiter
from facefleet.api.security import PrincipalCache
from facefleet.api.storage.db.engine import create_sessionmaker
from facefleet.api.storage.hot.base import HotStore
from facefleet.api.storage.pending_audit import PendingAudit
from facefleet.api.tenants.gallery_versions import GalleryVersions
from facefleet.api.unit_of_work import WorkerRef
from facefleet.api.workers.waiting import CameraWaiters
from facefleet.face.loader import EngineLoader

if TYPE_CHECKING:
    from facefleet.api.background.leader import Leadership
    from facefleet.api.background.leader_requests import LeaderRequests
    from facefleet.api.background.reaper import Reaper


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    hot: HotStore
    principals: PrincipalCache
    audit: PendingAudit = field(default_factory=lambda: PendingAudit())
    clock: Callable[[], float] = time.time
    events: EventBroker = field(default_factory=lambda: MemoryEventBroker())
    metrics: Metrics = field(default_factory=Metrics)
    digest: StatsDigest = field(init=False)
    gallery_versions: GalleryVersions = field(init=False)
    # Workers whose hot record may lag the database after a failed write-through; this
    # replica's repair loop brings them back in line.
    repairs: set[WorkerRef] = field(default_factory=set)
    snapshots: SnapshotCache = field(default_factory=SnapshotCache)
    # Enrollment and recognition photos (upsampled: enrollment photos vary in size).
    face_engine: EngineLoader = field(default_factory=lambda: EngineLoader(upsample=1))
    # Set when unknown sightings arrive (the stranger clusterer runs on the leader).
    clusterer_wakeup: Alarm = field(default_factory=Alarm)
    # Brought forward to when a worker whose presence broke off here expires; only the
    # leader's reaper sleeps on it (a break another replica saw waits for the next period).
    reaper_alarm: Alarm = field(default_factory=Alarm)

    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    # Sessions that only read (GET requests, background reads): on SQLite they take no
    # write lock, so they never queue behind writers.
    reads: async_sessionmaker[AsyncSession] = field(init=False)
    # Idle workers waiting on a long-poll camera request.
    waiters: CameraWaiters = field(init=False)
    # Set when this replica starts a graceful shutdown (api/server.py).
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # The clock rate-limit buckets are judged by: the backend's, shared by the replicas
    # (not ``clock``, which tests move by hand).
    rate_clock: Callable[[], float] = time.time
    limits: RateLimiter = field(init=False)
    # When each key was last used (written at most about once a minute per key).
    key_usage: KeyUsage = field(init=False)
    # Set in the lifespan: the leader election (whether this replica takes part or not),
    # the reaper its passes and operators' cleanups share, and the way to ask the leader.
    election: Leadership | None = None
    reaper: Reaper | None = None
    leader_requests: LeaderRequests | None = None

    def __post_init__(self) -> None:
        self.reads = create_sessionmaker(self.engine, read_only=True)
        self.waiters = CameraWaiters(self.events)
        self.digest = StatsDigest(self.hot, self.events)
        self.gallery_versions = GalleryVersions(self.reads)
        self.limits = RateLimiter(self.hot, self.settings, self.rate_clock)
        self.key_usage = KeyUsage(self.sessions)

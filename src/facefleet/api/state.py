"""The typed state the lifespan creates and every request reaches through ``deps``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from facefleet.api.config import Settings
from facefleet.api.security import PrincipalCache
from facefleet.api.storage.hot.base import HotStore
from facefleet.api.storage.pending_audit import PendingAudit


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    hot: HotStore
    principals: PrincipalCache
    audit: PendingAudit = field(default_factory=lambda: PendingAudit())
    clock: Callable[[], float] = time.time

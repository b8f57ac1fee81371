"""Rate limits per API key: token buckets in the hot store, so replicas share them.

Each key has two buckets. The worker budget covers what keeps a worker alive and supplied
(registration, heartbeats, the presence stream, camera requests and releases, on their new
and legacy paths); the general budget covers every other request. A busy dashboard or
script therefore never starves a worker's heartbeat, even when both use the same key. A
request over its budget is ``429 TooManyRequests`` with ``Retry-After``; nothing else
happens for it. A rate of 0 turns a budget off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum

from facefleet.api.config import Settings
from facefleet.api.errors import FacefleetError
from facefleet.api.security import Principal
from facefleet.api.storage.hot.base import HotStore
from facefleet.protocol.errors import ErrorName


class Budget(StrEnum):
    general = "general"
    worker = "worker"


# The routes (path templates) the worker budget pays for.
WORKER_ROUTES = frozenset(
    {
        "/v1/workers/register",
        "/v1/workers/{worker_id}/heartbeat",
        "/v1/workers/{worker_id}/presence",
        "/v1/workers/{worker_id}/camera/request",
        "/v1/workers/{worker_id}/camera",
        "/v1/workers/{worker_id}/camera/release",
        "/v1/registry/workers/register",
        "/v1/registry/workers/{worker_id}/heartbeat",
        "/v1/workers/{worker_id}/request-camera",
    }
)


def budget_of(route_path: str | None) -> Budget:
    return Budget.worker if route_path in WORKER_ROUTES else Budget.general


class TooManyRequests(FacefleetError):
    name = ErrorName.too_many_requests
    status_code = 429


class RateLimiter:
    def __init__(self, hot: HotStore, settings: Settings, clock: Callable[[], float]) -> None:
        self._hot = hot
        # The clock every replica shares (Redis's own with Redis): buckets are shared.
        self._clock = clock
        self._limits = {
            Budget.general: (settings.rate_limit, settings.rate_limit_burst),
            Budget.worker: (settings.worker_rate_limit, settings.worker_rate_limit_burst),
        }

    async def spend(self, principal: Principal, budget: Budget) -> None:
        """Take one request from the key's budget, or raise TooManyRequests."""
        rate, burst = self._limits[budget]
        if rate <= 0:
            return
        wait = await self._hot.take_token(
            f"{principal.key_id}:{budget.value}", rate=rate, burst=burst, now=self._clock()
        )
        if wait > 0:
            raise TooManyRequests(
                f"this API key is over its {budget.value} budget of {rate:g} requests a "
                f"second (bursts of {burst}); retry after {wait:.2f}s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
                retry_after=round(wait, 3),
            )

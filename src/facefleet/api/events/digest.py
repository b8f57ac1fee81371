"""The stats digest: heartbeats are coalesced and reach operators at most once a second,
as one event per watched tenant carrying the latest metrics of each worker that reported.

The hot store records which workers heartbeated (on any replica); one replica, the leader,
publishes the digest."""

from __future__ import annotations

from collections import Counter

from facefleet.api.events.broker import EventBroker
from facefleet.api.storage.hot.base import HotStore


class StatsDigest:
    def __init__(self, hot: HotStore, events: EventBroker) -> None:
        self._hot = hot
        self._events = events

    async def publish(self, now: float) -> int:
        touched = await self._hot.take_touched()
        published = 0
        for tenant_id in self._events.tenants_watched() & touched.keys():
            workers = await self._hot.list_workers(tenant_id)
            await self._events.publish(
                tenant_id,
                "stats",
                {
                    "workers": dict(Counter(w.status.value for w in workers)),
                    "heartbeats_per_second": await self._hot.heartbeat_rate(now=now),
                    "metrics": {
                        worker_id: metrics
                        for worker_id, metrics in touched[tenant_id].items()
                        if metrics is not None
                    },
                },
            )
            published += 1
        return published

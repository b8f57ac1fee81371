"""Read side of the worker API: one worker, the list, the statistics."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.clock import to_datetime
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.storage.db import cameras_repo, events_repo, leases_repo, workers_repo
from facefleet.api.storage.db.models import Worker
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.api.workers import schemas
from facefleet.api.workers.identity import lease_infos, not_registered
from facefleet.protocol.enums import LIVE_STATUSES, WorkerStatus

HISTORY_LIMIT = 100
# Detail no reader is shown: events recorded before it was left out carry the registering
# process's instance_id.
PRIVATE_DETAIL = frozenset({"instance_id"})


class WorkerQueries:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.hot = state.hot

    def _merge(
        self, row: Worker, live: LiveWorker | None, held: list[leases_repo.HeldLease], now: float
    ) -> schemas.WorkerOut:
        if live is not None:
            status = live.status
            last_seen: datetime | None = to_datetime(live.last_seen)
            metrics = live.metrics
            cameras = lease_infos(live, now)
            desired = live.desired_state
        else:
            status = WorkerStatus(row.status)
            last_seen = row.last_seen_at
            metrics = row.metrics
            cameras = [
                schemas.LeaseInfo(camera_id=h.camera_id, epoch=h.epoch, valid=False, expires_in=0)
                for h in held
            ]
            desired = row.desired_state
        return schemas.WorkerOut(
            worker_id=row.worker_id,
            hostname=row.hostname,
            version=row.version,
            status=status,
            desired_state=desired,
            capacity=row.capacity,
            labels=row.labels,
            registered_at=row.registered_at,
            last_seen_at=last_seen,
            metrics=metrics,
            cameras=cameras,
        )

    async def get(
        self, session: AsyncSession, principal: Principal, worker_id: str
    ) -> schemas.WorkerDetail:
        row = await workers_repo.get(session, principal.tenant_id, worker_id)
        if row is None:
            raise not_registered(worker_id)
        live = await self.hot.get_worker(principal.tenant_id, worker_id)
        held = [] if live else await leases_repo.held_by(session, row.id)
        out = self._merge(row, live, held, self.state.clock())
        history = await events_repo.for_worker(session, row.id, HISTORY_LIMIT)
        return schemas.WorkerDetail(
            **out.model_dump(),
            history=[
                schemas.WorkerEventOut(
                    kind=e.kind,
                    camera_id=e.camera_id,
                    epoch=e.epoch,
                    detail={k: v for k, v in e.detail.items() if k not in PRIVATE_DETAIL},
                    created_at=e.created_at,
                )
                for e in history
            ],
        )

    async def _all(self, session: AsyncSession, tenant_id: str) -> list[schemas.WorkerOut]:
        rows = await workers_repo.for_tenant(session, tenant_id)
        live = {w.worker_id: w for w in await self.hot.list_workers(tenant_id)}
        now = self.state.clock()
        return [self._merge(row, live.get(row.worker_id), [], now) for row in rows]

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        status: WorkerStatus | None,
        label: str | None,
        offset: int,
        limit: int,
    ) -> schemas.WorkerPage:
        items = [
            w
            for w in await self._all(session, principal.tenant_id)
            if (status is None or w.status == status) and (label is None or label in w.labels)
        ]
        return schemas.WorkerPage(
            items=items[offset : offset + limit], total=len(items), offset=offset, limit=limit
        )

    async def stats(self, session: AsyncSession, principal: Principal) -> schemas.WorkerStats:
        # Live statuses come from the hot store, the others from one GROUP BY: no row is
        # loaded, so stats stay cheap for a large fleet.
        live = await self.hot.list_workers(principal.tenant_id)
        by_status = Counter(w.status.value for w in live if w.is_live)
        stored = await workers_repo.status_counts(session, principal.tenant_id)
        live_ids = {w.worker_id for w in live if w.is_live}
        for status in (WorkerStatus.offline, WorkerStatus.deregistered):
            by_status[status.value] += stored.get(status.value, 0)
        # Rows the database still calls live but the hot store no longer knows.
        unknown = sum(stored.get(s.value, 0) for s in LIVE_STATUSES) - len(live_ids)
        by_status[WorkerStatus.offline.value] += max(0, unknown)
        return schemas.WorkerStats(
            workers={s.value: by_status.get(s.value, 0) for s in WorkerStatus},
            cameras=await cameras_repo.counts(session, principal.tenant_id),
            heartbeats_per_second=await self.hot.heartbeat_rate(now=self.state.clock()),
        )

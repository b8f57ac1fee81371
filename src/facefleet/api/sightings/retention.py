"""The retention pruner: each tenant's sightings, and their crops and embeddings, are kept
only as long as its settings say. Run by the leader only.

By when a sighting was last seen: older than ``sighting_retention_days`` it is deleted
(strangers left without sightings go with it); older than ``crop_retention_days`` it keeps
its times and labels but loses its face crop and embedding. Faces enrolled in the gallery
and negative examples are the gallery's, kept until removed or erased. Work is done in
batches of ``BATCH`` rows, one transaction each, so a large backlog never holds a long lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.background.leader import Leadership, ensure_leading
from facefleet.api.clock import to_datetime
from facefleet.api.people.erasure import delete_where
from facefleet.api.state import AppState
from facefleet.api.storage.db import audit_repo, strangers_repo
from facefleet.api.storage.db.models import Sighting, Tenant

log = logging.getLogger(__name__)

BATCH = 1000
# Seconds between passes: retention counts in days, a pass costs a few queries.
PERIOD = 300.0


@dataclass
class Pruned:
    sightings: int = 0
    crops: int = 0
    strangers: int = 0

    def __bool__(self) -> bool:
        return bool(self.sightings or self.crops)


class RetentionPruner:
    def __init__(self, state: AppState, leadership: Leadership | None = None) -> None:
        self.state = state
        self._leadership = leadership

    async def _commit(self, session: AsyncSession) -> None:
        await ensure_leading(self._leadership)
        await session.commit()

    async def run_once(self) -> dict[str, Pruned]:
        """One pass over every tenant with a retention setting: what was removed."""
        async with self.state.sessions() as session:
            tenants = (
                await session.execute(
                    select(
                        Tenant.id, Tenant.sighting_retention_days, Tenant.crop_retention_days
                    ).where(
                        or_(
                            Tenant.sighting_retention_days.is_not(None),
                            Tenant.crop_retention_days.is_not(None),
                        )
                    )
                )
            ).all()
            await session.rollback()
        now = to_datetime(self.state.clock())
        done: dict[str, Pruned] = {}
        for tenant_id, sighting_days, crop_days in tenants:
            pruned = Pruned()
            if sighting_days is not None:
                await self._sightings(tenant_id, now - timedelta(days=sighting_days), pruned)
            if crop_days is not None:
                await self._crops(tenant_id, now - timedelta(days=crop_days), pruned)
            if pruned:
                await self._record(tenant_id, pruned)
                done[tenant_id] = pruned
        return done

    async def _sightings(self, tenant_id: str, cutoff: datetime, pruned: Pruned) -> None:
        while True:
            async with self.state.sessions() as session:
                rows = (
                    await session.execute(
                        select(Sighting.id, Sighting.stranger_id, Sighting.crop.is_not(None))
                        .where(Sighting.tenant_id == tenant_id, Sighting.last_seen < cutoff)
                        .order_by(Sighting.id)
                        .limit(BATCH)
                    )
                ).all()
                if not rows:
                    return
                await delete_where(session, Sighting, Sighting.id.in_([r[0] for r in rows]))
                gone = await strangers_repo.refresh(session, [r[1] for r in rows])
                await self._commit(session)
            pruned.sightings += len(rows)
            pruned.crops += sum(1 for r in rows if r[2])
            pruned.strangers += len(gone)
            if len(rows) < BATCH:
                return

    async def _crops(self, tenant_id: str, cutoff: datetime, pruned: Pruned) -> None:
        while True:
            async with self.state.sessions() as session:
                ids = list(
                    await session.scalars(
                        select(Sighting.id)
                        .where(
                            Sighting.tenant_id == tenant_id,
                            Sighting.last_seen < cutoff,
                            or_(Sighting.crop.is_not(None), Sighting.embedding.is_not(None)),
                        )
                        .order_by(Sighting.id)
                        .limit(BATCH)
                    )
                )
                if not ids:
                    return
                await session.execute(
                    update(Sighting)
                    .where(Sighting.id.in_(ids))
                    .values(crop=None, embedding=None)
                    .execution_options(synchronize_session=False)
                )
                await self._commit(session)
            pruned.crops += len(ids)
            if len(ids) < BATCH:
                return

    async def _record(self, tenant_id: str, pruned: Pruned) -> None:
        async with self.state.sessions() as session:
            audit_repo.record(
                session,
                tenant_id,
                "retention_pruned",
                sightings=pruned.sightings,
                crops=pruned.crops,
                strangers=pruned.strangers,
            )
            await self._commit(session)
        log.info(
            "retention: tenant %s: %d sightings and %d crops removed",
            tenant_id,
            pruned.sightings,
            pruned.crops,
        )
        await self.state.events.publish(
            tenant_id,
            "retention_pruned",
            {"sightings": pruned.sightings, "crops": pruned.crops, "strangers": pruned.strangers},
        )

"""The stranger clusterer: unknown sightings grouped by face, per tenant, incrementally.

Run by the leader only, so two replicas never open two strangers for one face. Each pass
takes the oldest pending sightings (a bounded batch), embeds those that came without an
embedding from their crop with the app's face engine (in a thread, one crop at a time, off
every request's path), then in one transaction puts each into the stranger whose centroid
is nearest within the tenant's match threshold, or opens a new stranger. A centroid is the
running mean of the embeddings that joined it. Each outcome is written compare-and-set on
the sighting's pending state, so a sighting labelled or erased meanwhile is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.background.leader import (
    Leadership,
    SoleLeader,
    ensure_leading,
    when_leading,
)
from facefleet.api.background.loops import outage
from facefleet.api.people import faces as face_work
from facefleet.api.state import AppState
from facefleet.api.storage.db import sightings_repo, strangers_repo, tenants_repo
from facefleet.api.storage.db.models import Stranger
from facefleet.api.storage.db.sightings_repo import PendingSighting
from facefleet.face.model import EMBEDDING_DIM, MODEL_NAME

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

# Sightings per pass: bounds the crops embedded (and the transaction) at a time.
BATCH = 32
# Passes back to back while a backlog remains, before waiting for the next wake-up.
MAX_PASSES = 8
# Seconds between passes when nothing wakes the clusterer (sightings of other replicas).
PERIOD = 1.0


@dataclass
class _Cluster:
    """The tenant's strangers during one pass: their centroids as a matrix."""

    ids: list[int]
    centroids: npt.NDArray[np.float32]
    members: list[int]


class StrangerClusterer:
    def __init__(self, state: AppState, leadership: Leadership | None = None) -> None:
        self.state = state
        self._leadership = leadership

    async def run_once(self) -> int:
        """One pass; the number of sightings it settled."""
        async with self.state.sessions() as session:
            pending = await sightings_repo.pending(session, BATCH)
            await session.rollback()
        if not pending:
            return 0
        vectors = {item.id: await self._embedding(item) for item in pending}
        events: list[tuple[str, dict[str, Any]]] = []
        async with self.state.sessions() as session:
            for tenant_id in sorted({item.tenant_id for item in pending}):
                items = [item for item in pending if item.tenant_id == tenant_id]
                threshold = (await tenants_repo.tenant(session, tenant_id)).match_threshold
                cluster = await self._load(session, tenant_id)
                for item in items:
                    event = await self._settle(session, cluster, item, vectors[item.id], threshold)
                    if event is not None:
                        events.append((tenant_id, event))
            # A replica that lost the leader lock meanwhile must not act on the database.
            await ensure_leading(self._leadership)
            await session.commit()
        for tenant_id, event in events:
            await self.state.events.publish(tenant_id, "stranger_seen", event)
        return len(pending)

    async def drain(self) -> None:
        """Passes until the backlog is gone (at most MAX_PASSES, then the next wake-up)."""
        for _ in range(MAX_PASSES):
            if await self.run_once() < BATCH:
                return
            await asyncio.sleep(0)

    async def run_forever(self) -> None:
        """Passes on the leader, at each wake-up and at least every PERIOD seconds."""
        step = when_leading(self._leadership or SoleLeader(), self.drain, "stranger clusterer")
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if (reason := outage(exc)) is not None:
                    log.warning("stranger clusterer: a dependency is unavailable (%s)", reason)
                else:
                    log.exception("stranger clusterer pass failed")
            await self.state.clusterer_wakeup.wait(PERIOD)

    async def _embedding(self, item: PendingSighting) -> npt.NDArray[np.float32] | None:
        import numpy as np

        if item.embedding is not None and len(item.embedding) == EMBEDDING_DIM * 4:
            return np.frombuffer(item.embedding, dtype="<f4")
        if item.crop is None:
            return None
        # An engine that cannot load fails the pass (retried); one crop failing does not
        # block the queue behind it.
        engine = await self.state.face_engine.get()
        try:
            return await face_work.embed_crop(
                engine, f"sighting {item.id}", item.crop, self.state.settings.max_image_pixels
            )
        except Exception as exc:
            log.warning("sighting %d: its crop could not be analysed: %s", item.id, exc)
            return None

    async def _load(self, session: AsyncSession, tenant_id: str) -> _Cluster:
        import numpy as np

        rows = await strangers_repo.centroids(session, tenant_id, MODEL_NAME)
        matrix = np.array(
            [np.frombuffer(centroid, dtype="<f4") for _, centroid, _ in rows], dtype=np.float32
        ).reshape(len(rows), EMBEDDING_DIM)
        return _Cluster([sid for sid, _, _ in rows], matrix, [m for _, _, m in rows])

    async def _settle(
        self,
        session: AsyncSession,
        cluster: _Cluster,
        item: PendingSighting,
        vector: npt.NDArray[np.float32] | None,
        threshold: float,
    ) -> dict[str, Any] | None:
        import numpy as np

        if vector is None:
            await sightings_repo.settle(
                session, item.id, embedding=None, stranger_id=None, state="no_face"
            )
            return None
        vector = np.asarray(vector, dtype=np.float32)
        embedding = vector.astype("<f4").tobytes()
        stranger_id, new = None, False
        if cluster.ids:
            distances = np.linalg.norm(cluster.centroids - vector, axis=1)
            nearest = int(distances.argmin())
            if distances[nearest] <= threshold:
                members = cluster.members[nearest] + 1
                centroid = (
                    cluster.centroids[nearest] + (vector - cluster.centroids[nearest]) / members
                )
                if await strangers_repo.join(
                    session,
                    cluster.ids[nearest],
                    centroid.astype("<f4").tobytes(),
                    members,
                    item.first_seen,
                    item.last_seen,
                ):
                    stranger_id = cluster.ids[nearest]
                    cluster.centroids[nearest] = centroid
                    cluster.members[nearest] = members
        if stranger_id is None:
            stranger = Stranger(
                tenant_id=item.tenant_id,
                model=MODEL_NAME,
                centroid=embedding,
                members=1,
                sightings=1,
                first_seen=item.first_seen,
                last_seen=item.last_seen,
            )
            session.add(stranger)
            await session.flush()
            stranger_id, new = stranger.id, True
            cluster.ids.append(stranger.id)
            cluster.centroids = np.vstack([cluster.centroids, vector[None, :]])
            cluster.members.append(1)
        if not await sightings_repo.settle(
            session, item.id, embedding=embedding, stranger_id=stranger_id, state="done"
        ):
            # Labelled or erased since it was read: undo the count it was given.
            await strangers_repo.refresh(session, [stranger_id])
            return None
        sightings = await strangers_repo.sighting_count(session, stranger_id)
        return {
            "stranger_id": stranger_id,
            "new": new,
            "sighting_id": item.id,
            "camera_id": item.camera_id,
            "sightings": sightings,
            "first_seen": item.first_seen.timestamp(),
            "last_seen": item.last_seen.timestamp(),
        }

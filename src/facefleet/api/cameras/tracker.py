"""The leader's view of which cameras are processed: ``camera_state`` events and metrics.

Every pass derives each held camera's state from its holder's hot record (the stream report
of its latest heartbeat); a camera that left every worker's leases is looked up in the
database (unassigned, failing or disabled). Changes are published per tenant; /metrics shows
how many cameras are in each state and counts the camera-seconds not processed.
"""

from __future__ import annotations

import time
from collections import Counter

from facefleet.api.cameras.states import NOT_PROCESSED, Processing, camera_state, held_state
from facefleet.api.clock import to_datetime
from facefleet.api.state import AppState
from facefleet.api.storage.db import cameras_repo

# The database's counts (enabled, disabled, failing cameras) are refreshed this often.
COUNTS_PERIOD = 10.0


class CameraStateTracker:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self._last: dict[str, dict[int, Processing]] = {}
        self._counts: dict[str, dict[str, int]] = {}
        self._counts_at = float("-inf")
        self._last_pass: float | None = None

    async def run_once(self) -> int:
        """One pass; the number of ``camera_state`` events published."""
        state = self.state
        now = state.clock()
        held: dict[str, dict[int, Processing]] = {}
        for worker in await state.hot.list_workers():
            if not worker.is_live:
                continue
            cameras = held.setdefault(worker.tenant_id, {})
            for camera_id, epoch in worker.leases.items():
                cameras[camera_id] = held_state(worker, camera_id, epoch, now, worker.worker_id)
        current = {tenant: dict(cameras) for tenant, cameras in held.items()}
        gone = [
            camera_id
            for tenant, cameras in self._last.items()
            for camera_id in cameras
            if camera_id not in held.get(tenant, {})
        ]
        streaming_again = [
            camera_id
            for tenant, cameras in held.items()
            for camera_id, processing in cameras.items()
            if processing.state == "streaming"
            and self._last.get(tenant, {}).get(camera_id, processing).state != "streaming"
        ]
        async with state.reads() as session:
            for camera, lease, holder in await cameras_repo.leases_with_holders(session, gone):
                current.setdefault(camera.tenant_id, {})[camera.id] = camera_state(
                    camera.enabled, lease, holder, None, now
                )
            if time.monotonic() - self._counts_at >= COUNTS_PERIOD:
                self._counts = await cameras_repo.fleet_counts(session, to_datetime(now))
                self._counts_at = time.monotonic()
            await session.rollback()
        if streaming_again:
            async with state.sessions() as session:
                await cameras_repo.clear_failures(session, streaming_again)
                await session.commit()
        published = 0
        for tenant, cameras in current.items():
            before = self._last.get(tenant, {})
            for camera_id, processing in sorted(cameras.items()):
                if before.get(camera_id) != processing:
                    await state.events.publish(
                        tenant, "camera_state", processing.as_event(camera_id)
                    )
                    published += 1
        # Cameras no longer held stay known only until their state was published once.
        self._last = {
            tenant: {cid: p for cid, p in cameras.items() if cid in held.get(tenant, {})}
            for tenant, cameras in current.items()
        }
        self._observe(held, now)
        return published

    def _observe(self, held: dict[str, dict[int, Processing]], now: float) -> None:
        metrics = self.state.metrics
        by_state: Counter[str] = Counter()
        unprocessed = 0
        for tenant, counts in self._counts.items():
            cameras = held.get(tenant, {})
            states = Counter(p.state for p in cameras.values())
            unheld = max(0, counts["enabled"] - len(cameras))
            failing = min(unheld, counts["failing"])
            states["failing"] += failing
            states["unassigned"] += unheld - failing
            states["disabled"] += counts["disabled"]
            by_state.update(states)
            unprocessed += sum(n for s, n in states.items() if s in NOT_PROCESSED)
        for name in ("disabled", "unassigned", "failing", "starting", "streaming", "stalled"):
            metrics.cameras.labels(state=name).set(by_state.get(name, 0))
        if self._last_pass is not None:
            metrics.camera_unprocessed_seconds.inc(unprocessed * max(0.0, now - self._last_pass))
        self._last_pass = now

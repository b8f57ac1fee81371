"""Simulated workers speaking the HTTP API to several control-plane replicas, and a sampler
that checks the lease invariant from the workers' own view while they run.

Each worker behaves as the agent must: it registers, heartbeats, asks for a camera when it
has none, re-registers after a 404, and believes a lease only until its self-fencing
deadline (the send time of its last successful heartbeat or registration, plus the lease
TTL, minus a margin), all on its own monotonic clock. Each request goes to a random
replica; a replica that does not answer is skipped for the next one."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from facefleet.api.storage.hot.base import HotStore

FENCE_MARGIN = 0.5


@dataclass
class SimWorker:
    worker_id: str
    urls: list[str]
    api_key: str
    http: httpx.AsyncClient
    lease_ttl: float
    interval: float
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    token: str = ""
    leases: dict[int, int] = field(default_factory=dict)  # camera -> epoch
    fence_until: float = 0.0
    stopped: bool = False
    grants: list[tuple[int, int]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    heartbeat_statuses: Counter[str] = field(default_factory=Counter)
    kept_on_register: list[int] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    # -- the worker's view ----------------------------------------------------------------

    def streaming(self, now: float | None = None) -> set[int]:
        """Cameras this worker processes right now: believed leased and not fenced."""
        if self.stopped:
            return set()
        now = time.monotonic() if now is None else now
        return set(self.leases) if now < self.fence_until else set()

    def _confirmed(self, sent_at: float, leases: list[dict[str, Any]]) -> None:
        self.leases = {le["camera_id"]: le["epoch"] for le in leases if le["valid"]}
        self.fence_until = sent_at + self.lease_ttl - FENCE_MARGIN

    # -- HTTP -----------------------------------------------------------------------------

    def _headers(self, session: bool = True) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if session and self.token:
            headers["X-Worker-Session"] = self.token
        return headers

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response | None:
        for url in random.sample(self.urls, len(self.urls)):
            try:
                resp = await self.http.request(method, f"{url}{path}", **kw)
            except httpx.TransportError:
                self.statuses["unreachable"] += 1
                continue
            self.statuses[str(resp.status_code)] += 1
            return resp
        return None

    async def register(self) -> None:
        sent_at = time.monotonic()
        resp = await self._call(
            "POST",
            "/v1/workers/register",
            json={"worker_id": self.worker_id, "instance_id": self.instance_id, "capacity": 1},
            headers=self._headers(session=False),
        )
        if resp is not None and resp.status_code == 200:
            body = resp.json()
            self.token = body["session_token"]
            self._confirmed(sent_at, body["leases"])
            self.kept_on_register.extend(self.leases)

    async def heartbeat(self) -> None:
        sent_at = time.monotonic()
        resp = await self._call(
            "POST",
            f"/v1/workers/{self.worker_id}/heartbeat",
            json={"metrics": {"streaming": len(self.streaming())}},
            headers=self._headers(),
        )
        self.heartbeat_statuses["unreachable" if resp is None else str(resp.status_code)] += 1
        if resp is None or resp.status_code >= 500:
            return  # no renewal: the self-fence runs out on its own
        if resp.status_code == 200:
            self._confirmed(sent_at, resp.json()["leases"])
            return
        # 404 (unknown or declared offline) or 403 (session replaced): register again, and
        # stop believing anything until then.
        self.token = ""
        self.leases = {}

    async def request_camera(self) -> None:
        resp = await self._call(
            "POST", f"/v1/workers/{self.worker_id}/camera/request", headers=self._headers()
        )
        if resp is None or resp.status_code != 200:
            return
        got = resp.json()["assignment"]
        if got is not None:
            self.leases[got["camera_id"]] = got["epoch"]
            self.grants.append((got["camera_id"], got["epoch"]))

    async def _loop(self) -> None:
        while not self.stopped:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                if not self.token:
                    await self.register()
                else:
                    await self.heartbeat()
                    if self.token and not self.leases and not self.stopped:
                        await self.request_camera()
            await asyncio.sleep(self.interval * random.uniform(0.8, 1.0))

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"worker {self.worker_id}")

    async def stop(self) -> None:
        """Stop as a killed process does: no more requests, nothing released."""
        self.stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def holders(workers: list[SimWorker]) -> dict[int, list[str]]:
    now = time.monotonic()
    out: dict[int, list[str]] = {}
    for worker in workers:
        for camera in worker.streaming(now):
            out.setdefault(camera, []).append(worker.worker_id)
    return out


@dataclass
class Sampler:
    """Samples the fleet every ``period``: no camera streamed by two workers, ever; the
    epochs granted for each camera only grow; and when each camera was last streamed."""

    workers: list[SimWorker]
    cameras: list[int]
    period: float = 0.02
    samples: int = 0
    violations: list[str] = field(default_factory=list)
    # Periods (start, end) during which a camera was streamed by no worker.
    gaps: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    hot: HotStore | None = None
    _gap_start: dict[int, float] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def check_once(self) -> None:
        now = time.monotonic()
        found = holders(self.workers)
        self.samples += 1
        for camera, names in found.items():
            if len(names) > 1:
                self.violations.append(f"camera {camera} streamed by {names}")
        for camera in self.cameras:
            if camera in found and camera in self._gap_start:
                self.gaps.setdefault(camera, []).append((self._gap_start.pop(camera), now))
            elif camera not in found and camera not in self._gap_start:
                self._gap_start[camera] = now

    async def check_hot_store(self) -> None:
        """The shared hot store never shows one camera in two live, unexpired leases."""
        if self.hot is None:
            return
        with contextlib.suppress(Exception):  # Redis may be down on purpose
            workers = await self.hot.list_workers()
            now = time.time()
            seen: dict[int, str] = {}
            for worker in workers:
                if not worker.is_live or worker.deadline <= now:
                    continue
                for camera in worker.leases:
                    if camera in seen:
                        self.violations.append(
                            f"hot store: camera {camera} on {seen[camera]} and {worker.worker_id}"
                        )
                    seen[camera] = worker.worker_id

    def longest_gap_after(self, since: float) -> float:
        """The longest time any camera went unstreamed after ``since`` (monotonic)."""
        now = time.monotonic()
        periods = [p for camera_gaps in self.gaps.values() for p in camera_gaps]
        periods += [(start, now) for start in self._gap_start.values()]
        return max((end - max(start, since) for start, end in periods if end > since), default=0)

    async def _loop(self) -> None:
        while True:
            self.check_once()
            if self.samples % 5 == 0:
                await self.check_hot_store()
            await asyncio.sleep(self.period)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="lease sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def epochs_increase(self) -> list[str]:
        by_camera: dict[int, list[int]] = {}
        for worker in self.workers:
            for camera, epoch in worker.grants:
                by_camera.setdefault(camera, []).append(epoch)
        return [
            f"camera {camera} granted epochs {sorted(epochs)} more than once"
            for camera, epochs in by_camera.items()
            if len(set(epochs)) != len(epochs)
        ]

    def streamed(self) -> set[int]:
        return set(holders(self.workers))

    async def wait_all_streamed(self, timeout: float) -> float:
        """Seconds until every camera is streamed by some worker."""
        started = time.monotonic()
        while self.streamed() != set(self.cameras):
            if time.monotonic() - started > timeout:
                missing = set(self.cameras) - self.streamed()
                raise AssertionError(f"cameras {sorted(missing)} not streamed after {timeout}s")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

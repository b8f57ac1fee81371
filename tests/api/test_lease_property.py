"""Property test of the lease invariant under randomized concurrent operations.

Hypothesis draws batches of operations (register, request, release, heartbeat, time passing
with a reaper pass, deregister, control-plane restart); each batch runs concurrently against
the real API on the real database. After every batch:
- no camera is believed valid by two workers, where a worker believes a lease from the
  response that granted or confirmed it until its own self-fencing deadline
  (last successful heartbeat + lease TTL - margin), exactly as a worker agent must;
- the hot store never shows one camera in two live leases, and agrees with the database;
- operators draining workers (the reaper then takes their cameras away one by one) never
  lets a camera reach another worker while the drained one may still stream it;
- the epochs handed out for each camera strictly increase.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from facefleet.api.background.reaper import Reaper
from facefleet.api.storage.db.models import CameraLease
from tests.fixtures.harness import (
    Api,
    FakeClock,
    WorkerHandle,
    add_cameras,
    make_settings,
    running_api,
)

T = TypeVar("T")
WORKERS = ["w0", "w1", "w2", "w3"]
CAMERAS = 3
FENCE_MARGIN = 1.0


class LoopThread:
    """One event loop for the whole test, so the API outlives each Hypothesis example."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class ApiHost:
    """The running API, restartable on the same database."""

    def __init__(
        self, db_url: str, data_dir: Path, clock: FakeClock, hot_settings: dict[str, Any]
    ) -> None:
        self.settings = make_settings(data_dir, db_url, **hot_settings)
        self.clock = clock
        self._stack: contextlib.AsyncExitStack | None = None
        self.api: Api | None = None

    async def start(self) -> Api:
        self._stack = contextlib.AsyncExitStack()
        self.api = await self._stack.enter_async_context(running_api(self.settings, self.clock))
        return self.api

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None


@dataclass
class Belief:
    leases: dict[int, int] = field(default_factory=dict)  # camera -> epoch
    fence_until: float = 0.0


@dataclass
class Model:
    clock: FakeClock
    ttl: float
    handles: dict[str, WorkerHandle] = field(default_factory=dict)
    beliefs: dict[str, Belief] = field(default_factory=dict)
    epochs: dict[int, list[int]] = field(default_factory=dict)

    def confirm(self, worker: str, at: float) -> None:
        self.beliefs.setdefault(worker, Belief()).fence_until = at + self.ttl - FENCE_MARGIN

    def believed_valid(self) -> dict[int, list[str]]:
        now = self.clock()
        holders: dict[int, list[str]] = {}
        for name, belief in self.beliefs.items():
            if now < belief.fence_until:
                for cam in belief.leases:
                    holders.setdefault(cam, []).append(name)
        return holders


Op = tuple[str, str]
op_strategy = st.one_of(
    st.tuples(
        st.sampled_from(
            ["register", "request", "release", "heartbeat", "deregister", "drain", "undrain"]
        ),
        st.sampled_from(WORKERS),
    ),
    st.tuples(st.just("tick"), st.sampled_from(["0.5", "2.5", "7"])),
    st.tuples(st.just("restart"), st.just("")),
)


def batches() -> st.SearchStrategy[list[list[Op]]]:
    def clean(batch: list[Op]) -> list[Op]:
        # One op per worker per batch; time and restarts run alone.
        solo = [op for op in batch if op[0] in ("tick", "restart")]
        if solo:
            return [solo[0]]
        seen: dict[str, Op] = {}
        for op in batch:
            seen.setdefault(op[1], op)
        return list(seen.values())

    return st.lists(st.lists(op_strategy, min_size=1, max_size=4).map(clean), max_size=14)


async def apply(op: Op, model: Model, host: ApiHost) -> None:
    kind, arg = op
    clock = model.clock
    if kind == "tick":
        clock.advance(float(arg))
        assert host.api is not None
        await Reaper(host.api.state).run_once()
        return
    if kind == "restart":
        await host.stop()
        api = await host.start()
        for handle in model.handles.values():
            handle.api = api
        return
    handle = model.handles[arg]
    belief = model.beliefs.setdefault(arg, Belief())
    sent_at = clock()
    if kind == "register":
        resp = await handle.register()
        if resp.status_code == 200:
            belief.leases = {le["camera_id"]: le["epoch"] for le in resp.json()["leases"]}
            model.confirm(arg, sent_at)
        else:
            assert resp.status_code == 409, resp.text
    elif kind == "heartbeat":
        resp = await handle.heartbeat()
        if resp.status_code == 200:
            valid = [le for le in resp.json()["leases"] if le["valid"]]
            belief.leases = {le["camera_id"]: le["epoch"] for le in valid}
            model.confirm(arg, sent_at)
        else:
            assert resp.status_code == 404, resp.text
            belief.leases = {}
    elif kind == "request":
        resp = await handle.request_camera()
        assert resp.status_code in (200, 404), resp.text
        if resp.status_code == 200 and (got := resp.json()["assignment"]):
            belief.leases[got["camera_id"]] = got["epoch"]
            model.epochs.setdefault(got["camera_id"], []).append(got["epoch"])
    elif kind == "release":
        if belief.leases:
            cam, epoch = next(iter(belief.leases.items()))
            resp = await handle.release(cam, epoch)
            assert resp.status_code in (200, 404, 409), resp.text
            belief.leases.pop(cam, None)
    elif kind == "deregister":
        resp = await handle.deregister()
        assert resp.status_code in (200, 404), resp.text
        belief.leases = {}
    elif kind in ("drain", "undrain"):
        # The operator steers; the worker learns it (and which leases it lost) by heartbeat.
        resp = await handle.api.client.post(
            f"/v1/workers/{arg}/{kind}", headers=handle.tenant.headers()
        )
        assert resp.status_code in (200, 404, 409), resp.text


async def check(model: Model, host: ApiHost) -> None:
    for cam, holders in model.believed_valid().items():
        assert len(holders) <= 1, f"camera {cam} believed valid by {holders}"
    for cam, epochs in model.epochs.items():
        assert epochs == sorted(set(epochs)), f"camera {cam} epochs {epochs}"
    api = host.api
    assert api is not None
    now = model.clock()
    live: dict[int, tuple[int, int]] = {}
    tenant_id = next(iter(model.handles.values())).tenant.id
    for worker in await api.state.hot.list_workers(tenant_id):
        if worker.is_live and worker.deadline > now:
            for cam, epoch in worker.leases.items():
                assert cam not in live, f"camera {cam} live on two workers"
                live[cam] = (worker.pk, epoch)
    async with api.state.sessions() as session:
        rows = (await session.scalars(select(CameraLease))).all()
        await session.commit()
    db = {row.camera_id: (row.worker_pk, row.epoch) for row in rows}
    for cam, owner in live.items():
        assert db[cam] == owner, f"hot {owner} vs db {db[cam]} for camera {cam}"


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=batches())
def test_never_two_valid_leases_and_epochs_increase(
    plan: list[list[Op]],
    database_url: str,
    hot_settings: dict[str, Any],
    tmp_path: Path,
    loop_thread: LoopThread,
) -> None:
    clock = FakeClock()
    host = ApiHost(database_url, tmp_path, clock, hot_settings)

    async def scenario() -> None:
        api = await host.start()
        try:
            tenant = await api.tenant()
            await add_cameras(api, tenant, CAMERAS)
            model = Model(clock, api.settings.lease_ttl)
            model.handles = {w: WorkerHandle(api, tenant, w) for w in WORKERS}
            # Start from a registered fleet so short plans reach contention quickly.
            for name in WORKERS:
                await apply(("register", name), model, host)
            for batch in plan:
                await asyncio.gather(*(apply(op, model, host) for op in batch))
                await check(model, host)
        finally:
            await host.stop()

    loop_thread.run(scenario())

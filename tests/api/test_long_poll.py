"""The long-poll camera request: an idle worker is handed a camera the moment one is freed,
by whichever path frees it, without waiting for its next look (``retry_after``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from facefleet.api.clock import to_datetime
from facefleet.api.security import Role
from facefleet.api.storage.db import leases_repo, workers_repo
from tests.conftest import Backend
from tests.fixtures.harness import (
    Api,
    FakeClock,
    WorkerHandle,
    add_cameras,
    make_settings,
    running_api,
)

# Far longer than any test waits: a waiter answered in time was woken, not rechecking.
RECHECK = 60.0
WAIT = 30.0
ANSWERED_WITHIN = 10.0


@pytest.fixture
async def api(backend: Backend, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path, backend.database_url, retry_after=RECHECK, **backend.hot_settings
    )
    async with running_api(settings, clock) as running:
        yield running


async def holder_and_waiter(api: Api) -> tuple[WorkerHandle, WorkerHandle, int, int]:
    tenant = await api.tenant()
    (camera_id,) = await add_cameras(api, tenant, 1)
    holder, waiter = WorkerHandle(api, tenant, "holder"), WorkerHandle(api, tenant, "waiter")
    for worker in (holder, waiter):
        assert (await worker.register(capacity=2)).status_code == 200
    granted = (await holder.request_camera()).json()["assignment"]
    assert granted["camera_id"] == camera_id
    return holder, waiter, camera_id, granted["epoch"]


async def answer_after(
    waiter: WorkerHandle, free: Callable[[], Awaitable[httpx.Response]]
) -> httpx.Response:
    poll = asyncio.create_task(waiter.request_camera(wait=WAIT))
    await asyncio.sleep(0.3)  # the request is parked by now
    assert not poll.done(), poll.result().text
    freed = await free()
    assert freed.status_code == 200, freed.text
    async with asyncio.timeout(ANSWERED_WITHIN):
        return await poll


async def test_a_release_hands_the_camera_to_the_waiting_worker(api: Api) -> None:
    holder, waiter, camera_id, epoch = await holder_and_waiter(api)
    answer = await answer_after(waiter, lambda: holder.release(camera_id, epoch))
    assert answer.json()["assignment"]["camera_id"] == camera_id


async def test_a_worker_shutting_down_hands_its_camera_to_the_waiting_worker(api: Api) -> None:
    holder, waiter, camera_id, _ = await holder_and_waiter(api)

    answer = await answer_after(waiter, holder.shutdown_signal)
    assert answer.json()["assignment"]["camera_id"] == camera_id


async def test_a_deregistered_workers_camera_goes_to_the_waiting_worker(api: Api) -> None:
    holder, waiter, camera_id, _ = await holder_and_waiter(api)
    answer = await answer_after(waiter, holder.deregister)
    assert answer.json()["assignment"]["camera_id"] == camera_id


async def test_a_new_camera_goes_to_the_worker_waiting_longest(api: Api) -> None:
    tenant = await api.tenant()
    first, second = WorkerHandle(api, tenant, "first"), WorkerHandle(api, tenant, "second")
    for worker in (first, second):
        assert (await worker.register()).status_code == 200
    polls = []
    for worker in (first, second):
        polls.append(asyncio.create_task(worker.request_camera(wait=WAIT)))
        await asyncio.sleep(0.2)
    (camera_id,) = await add_cameras(api, tenant, 1)
    async with asyncio.timeout(ANSWERED_WITHIN):
        answer = await polls[0]
    assert answer.json()["assignment"]["camera_id"] == camera_id
    assert not polls[1].done()
    polls[1].cancel()


async def test_a_camera_the_waiter_cannot_take_passes_to_one_that_can(api: Api) -> None:
    tenant = await api.tenant()
    plain, gpu = WorkerHandle(api, tenant, "plain"), WorkerHandle(api, tenant, "gpu")
    assert (await plain.register()).status_code == 200
    assert (await gpu.register(labels=["gpu"])).status_code == 200
    polls = []
    for worker in (plain, gpu):
        polls.append(asyncio.create_task(worker.request_camera(wait=WAIT)))
        await asyncio.sleep(0.2)
    created = await api.client.post(
        "/v1/cameras",
        json={"name": "gpu-cam", "source_url": "rtsp://10.0.0.9/s", "required_labels": ["gpu"]},
        headers=tenant.headers(Role.admin),
    )
    assert created.status_code == 201, created.text
    async with asyncio.timeout(ANSWERED_WITHIN):
        answer = await polls[1]
    assert answer.json()["assignment"]["camera_id"] == created.json()["id"]
    assert not polls[0].done()
    polls[0].cancel()


async def test_a_worker_leaving_while_it_waits_itself_passes_its_turn_on(api: Api) -> None:
    # The holder has room for more and waits for a second camera: the release of its own
    # camera wakes it first (it has waited longest), and it leaves without one.
    holder, waiter, camera_id, _ = await holder_and_waiter(api)
    own_poll = asyncio.create_task(holder.request_camera(wait=WAIT))
    await asyncio.sleep(0.2)
    assert not own_poll.done(), own_poll.result().text

    answer = await answer_after(waiter, holder.shutdown_signal)
    assert answer.json()["assignment"]["camera_id"] == camera_id
    async with asyncio.timeout(ANSWERED_WITHIN):
        left = await own_poll
    assert left.json()["assignment"] is None


async def test_cameras_freed_together_go_to_as_many_waiting_workers(api: Api) -> None:
    tenant = await api.tenant()
    cameras = await add_cameras(api, tenant, 3)
    holder = WorkerHandle(api, tenant, "holder")
    assert (await holder.register(capacity=3)).status_code == 200
    for _ in cameras:
        assert (await holder.request_camera()).json()["assignment"] is not None
    waiters = [WorkerHandle(api, tenant, f"waiter-{i}") for i in range(3)]
    polls = []
    for worker in waiters:
        assert (await worker.register()).status_code == 200
        polls.append(asyncio.create_task(worker.request_camera(wait=WAIT)))
        await asyncio.sleep(0.1)
    assert (await holder.deregister()).status_code == 200
    async with asyncio.timeout(ANSWERED_WITHIN):
        answers = await asyncio.gather(*polls)
    assert sorted(a.json()["assignment"]["camera_id"] for a in answers) == sorted(cameras)


async def test_a_worker_the_database_took_offline_cannot_take_its_camera_back(api: Api) -> None:
    # The reaper's transaction (offline, cameras freed) commits before the hot record goes:
    # a request in that gap, from a process that may be dead, must be refused.
    holder, waiter, camera_id, _ = await holder_and_waiter(api)
    state = api.state
    live = await state.hot.get_worker(holder.tenant.id, holder.worker_id)
    assert live is not None
    async with state.sessions() as session:
        await leases_repo.release_all(session, live.pk, to_datetime(state.clock()))
        await workers_repo.set_status(session, live.pk, "offline")
        await session.commit()
    refused = await holder.request_camera()
    assert refused.status_code == 404, refused.text
    answer = await waiter.request_camera()
    assert answer.json()["assignment"]["camera_id"] == camera_id

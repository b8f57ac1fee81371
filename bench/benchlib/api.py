"""The control-plane calls the benchmarks make to set up and drive a fleet: cameras, worker
registration, camera requests and releases. Each takes the server's base URL, so one client
can spread its calls over several replicas."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from benchlib.clients import bearer, client_pool, worker_headers
from benchlib.processes import BenchError

T = TypeVar("T")


class ApiError(BenchError):
    """A setup call was refused; the message names the step and the status."""


def worker_id_of(index: int, prefix: str = "bench") -> str:
    return f"{prefix}-{index:05d}"


async def add_camera(
    client: httpx.AsyncClient, url: str, admin_key: str, index: int, **fields: Any
) -> int:
    """Camera ``index`` (its name and source are derived from it); returns its id."""
    body = {"name": f"cam-{index:05d}", "source_url": f"rtsp://127.0.0.1/cam-{index}", **fields}
    resp = await client.post(f"{url}/v1/cameras", json=body, headers=bearer(admin_key))
    if resp.status_code != 201:
        raise ApiError(f"add camera {resp.status_code}: {resp.text[:200]}")
    camera_id: int = resp.json()["id"]
    return camera_id


async def register(
    client: httpx.AsyncClient, url: str, key: str, worker_id: str, **fields: Any
) -> str:
    """Register a worker; returns its session token."""
    resp = await client.post(
        f"{url}/v1/workers/register",
        json={"worker_id": worker_id, **fields},
        headers=bearer(key),
    )
    if resp.status_code != 200:
        raise ApiError(f"register {resp.status_code}")
    token: str = resp.json()["session_token"]
    return token


async def request_camera(
    client: httpx.AsyncClient, url: str, key: str, worker_id: str, token: str
) -> dict[str, Any] | None:
    """The worker's camera request: the assignment it got, or None."""
    resp = await client.post(
        f"{url}/v1/workers/{worker_id}/camera/request", headers=worker_headers(key, token)
    )
    if resp.status_code != 200:
        raise ApiError(f"camera request {resp.status_code}")
    assignment: dict[str, Any] | None = resp.json().get("assignment")
    return assignment


async def release_camera(
    client: httpx.AsyncClient, url: str, key: str, worker_id: str, token: str, got: dict[str, Any]
) -> None:
    """Release the camera of assignment ``got``."""
    resp = await client.post(
        f"{url}/v1/workers/{worker_id}/camera/release",
        json={"camera_id": got["camera_id"], "epoch": got["epoch"]},
        headers=worker_headers(key, token),
    )
    if resp.is_error:
        raise ApiError(f"camera release {resp.status_code}")


async def get_json(url: str, path: str, key: str) -> tuple[Any, float]:
    """GET with an admin key; return the body and the seconds the call took."""
    async with httpx.AsyncClient(base_url=url, timeout=120.0) as client:
        started = time.perf_counter()
        resp = await client.get(path, headers=bearer(key))
        elapsed = time.perf_counter() - started
        resp.raise_for_status()
        return resp.json(), elapsed


async def bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the jobs with at most ``limit`` at a time; their results in order."""
    sem = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with sem:
            return await job()

    return await asyncio.gather(*(run(j) for j in jobs))


async def add_cameras(url: str, admin_key: str, count: int, concurrency: int) -> float:
    """Cameras 0 .. count-1, ``concurrency`` at a time; returns the seconds it took."""
    started = time.perf_counter()
    async with client_pool(concurrency, request_timeout=60.0) as pool:

        def job(i: int) -> Callable[[], Awaitable[int]]:
            async def create() -> int:
                async with pool.borrow() as client:
                    return await add_camera(client, url, admin_key, i)

            return create

        await bounded(concurrency, [job(i) for i in range(count)])
    return time.perf_counter() - started


async def enroll(client: httpx.AsyncClient, url: str, worker_key: str, worker_id: str) -> str:
    """Register one worker and take a camera lease; return its session token.

    Raises ApiError naming the step that failed.
    """
    token = await register(client, url, worker_key, worker_id, instance_id=f"{worker_id}-bench")
    if await request_camera(client, url, worker_key, worker_id, token) is None:
        raise ApiError("no camera assigned")
    return token


async def enroll_many(
    url: str, worker_key: str, indexes: list[int], concurrency: int
) -> tuple[list[tuple[str, str]], Counter[str], float]:
    """Enrol workers; return (worker_id, token) pairs, failures by cause, seconds taken."""
    started = time.perf_counter()
    failures: Counter[str] = Counter()
    async with client_pool(concurrency, request_timeout=60.0) as pool:

        def job(i: int) -> Callable[[], Awaitable[tuple[str, str] | None]]:
            async def run() -> tuple[str, str] | None:
                wid = worker_id_of(i)
                try:
                    async with pool.borrow() as client:
                        return wid, await enroll(client, url, worker_key, wid)
                except (ApiError, httpx.HTTPError) as exc:
                    failures[str(exc) or type(exc).__name__] += 1
                    return None

            return run

        results = await bounded(concurrency, [job(i) for i in indexes])
    return [r for r in results if r is not None], failures, time.perf_counter() - started


async def register_many(
    urls: list[str], key: str, worker_ids: list[str], concurrency: int = 16, **fields: Any
) -> list[tuple[str, str]]:
    """Register the workers, each through the next of ``urls`` in turn; (id, token) pairs."""
    async with httpx.AsyncClient(timeout=30) as client:

        def job(i: int, worker_id: str) -> Callable[[], Awaitable[tuple[str, str]]]:
            async def run() -> tuple[str, str]:
                url = urls[i % len(urls)]
                return worker_id, await register(client, url, key, worker_id, **fields)

            return run

        return await bounded(concurrency, [job(i, w) for i, w in enumerate(worker_ids)])

"""Run the real control plane in-process: the ASGI app with its lifespan, an httpx client
over it, and helpers for tenants, keys and workers."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from facefleet.api.app import create_app
from facefleet.api.config import Settings
from facefleet.api.security import Role
from facefleet.api.state import AppState
from facefleet.api.tenants.service import create_tenant


class FakeClock:
    """Wall time the test moves by hand, so lease expiry is exact and fast."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Tenant:
    id: str
    name: str
    keys: dict[Role, str]

    def headers(self, role: Role = Role.admin) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.facefleet
        return state

    async def tenant(self, name: str | None = None) -> Tenant:
        async with self.state.sessions() as session:
            created = await create_tenant(session, name or f"t-{uuid.uuid4().hex[:8]}")
            await session.commit()
        return Tenant(created.id, created.name, created.keys)


def make_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "bootstrap_default_tenant": False,
        "run_background": False,
        "auth_cache_seconds": 30.0,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running_api(settings: Settings, clock: FakeClock | None = None) -> AsyncIterator[Api]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://facefleet") as client:
            yield Api(app, client, settings)


@dataclass
class WorkerHandle:
    """A simulated worker speaking the HTTP API (the real agent comes with the worker issue)."""

    api: Api
    tenant: Tenant
    worker_id: str
    session_token: str = ""
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def headers(self) -> dict[str, str]:
        return {**self.tenant.headers(Role.worker), "X-Worker-Session": self.session_token}

    async def register(self, **body: Any) -> httpx.Response:
        payload = {"worker_id": self.worker_id, "instance_id": self.instance_id, **body}
        resp = await self.api.client.post(
            "/v1/workers/register", json=payload, headers=self.tenant.headers(Role.worker)
        )
        if resp.status_code == 200:
            self.session_token = resp.json()["session_token"]
        return resp

    async def heartbeat(self, metrics: dict[str, Any] | None = None) -> httpx.Response:
        return await self.api.client.post(
            f"/v1/workers/{self.worker_id}/heartbeat",
            json={"metrics": metrics},
            headers=self.headers,
        )

    async def request_camera(self) -> httpx.Response:
        return await self.api.client.post(
            f"/v1/workers/{self.worker_id}/camera/request", headers=self.headers
        )

    async def release(self, camera_id: int, epoch: int) -> httpx.Response:
        return await self.api.client.post(
            f"/v1/workers/{self.worker_id}/camera/release",
            json={"camera_id": camera_id, "epoch": epoch},
            headers=self.headers,
        )

    async def deregister(self) -> httpx.Response:
        return await self.api.client.delete(f"/v1/workers/{self.worker_id}", headers=self.headers)


async def add_cameras(
    api: Api, tenant: Tenant, count: int, prefix: str = "cam", **fields: Any
) -> list[int]:
    ids = []
    for i in range(count):
        resp = await api.client.post(
            "/v1/cameras",
            json={"name": f"{prefix}-{i:03d}", "source_url": f"rtsp://10.0.0.{i}/s", **fields},
            headers=tenant.headers(),
        )
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    return ids

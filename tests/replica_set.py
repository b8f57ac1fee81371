"""Several control-plane processes sharing one database and one Redis prefix, with fast
timings so lease expiry and failover happen within seconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.fleet import ControlPlane

LEASE_TTL = 3.0
INTERVAL = 0.75
LEADER_LOCK_TTL = 3.0  # the default
FAST = {
    "FACEFLEET_HEARTBEAT_INTERVAL": str(INTERVAL),
    "FACEFLEET_LEASE_TTL": str(LEASE_TTL),
    "FACEFLEET_REAPER_PERIOD": "0.2",
    "FACEFLEET_FLUSH_PERIOD": "0.5",
    "FACEFLEET_RETRY_AFTER": "0.5",
}


def start_replicas(
    tmp_path: Path, database_url: str, redis_url: str, prefix: str, **env: str
) -> list[ControlPlane]:
    """Two replicas started one after the other: the first creates the default tenant and
    its keys file, which the second reads from the same data directory."""
    shared = {
        **FAST,
        "FACEFLEET_REDIS_URL": redis_url,
        "FACEFLEET_REDIS_PREFIX": prefix,
        "FACEFLEET_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    replicas = []
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir(parents=True, exist_ok=True)
        plane = ControlPlane(workdir, database_url, env=dict(shared))
        replicas.append(plane)
    try:
        for plane in replicas:
            plane.start()
    except BaseException:
        for plane in replicas:
            plane.stop()
        raise
    return replicas


def _keys_file(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "data" / "default-tenant-keys.json").read_text())
    return data


def keys_of(tmp_path: Path) -> dict[str, str]:
    """The default tenant's API keys, by role."""
    keys: dict[str, str] = _keys_file(tmp_path)["keys"]
    return keys


def tenant_of(tmp_path: Path) -> str:
    tenant_id: str = _keys_file(tmp_path)["tenant_id"]
    return tenant_id


async def add_cameras(http: httpx.AsyncClient, url: str, admin_key: str, count: int) -> list[int]:
    ids = []
    for i in range(count):
        resp = await http.post(
            f"{url}/v1/cameras",
            json={"name": f"cam-{i:02d}", "source_url": f"rtsp://10.1.0.{i}/s"},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    return ids


async def worker_status(
    http: httpx.AsyncClient, url: str, admin_key: str, worker_id: str
) -> str | None:
    resp = await http.get(
        f"{url}/v1/workers/{worker_id}", headers={"Authorization": f"Bearer {admin_key}"}
    )
    return resp.json()["status"] if resp.status_code == 200 else None

"""Probes, Prometheus metrics, and the deprecated pre-consolidation worker paths."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import create_async_engine

from facefleet.api.health import router as health_router
from facefleet.api.observability.metrics import LOOP_PROBE_PERIOD, Metrics
from facefleet.api.security import Role
from tests.fixtures.harness import (
    Api,
    FakeClock,
    WorkerHandle,
    add_cameras,
    make_settings,
    running_api,
)
from tests.fixtures.services import create_pg_database, drop_pg_database

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

FAMILIES = {
    "facefleet_workers",
    "facefleet_heartbeats",
    "facefleet_camera_assignments",
    "facefleet_camera_assignment_seconds",
    "facefleet_leases_expired",
    "facefleet_websocket_clients",
    "facefleet_event_queue_drops",
    "facefleet_legacy_route_calls",
    "facefleet_http_request_duration_seconds",
    "facefleet_event_loop_lag_seconds",
    "facefleet_gc_pause_seconds",
}


async def scrape(api: Api) -> tuple[set[str], Samples]:
    resp = await api.client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(resp.text))
    samples = {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}
    return {f.name for f in families}, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def closed_port() -> int:
    """A local port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def assert_deprecated(resp: httpx.Response, successor: str) -> None:
    assert resp.headers["Deprecation"] == "true"
    assert resp.headers["Link"] == f'<{successor}>; rel="successor-version"'


# -- probes -------------------------------------------------------------------------------


async def test_healthz_answers_without_a_key(api: Api) -> None:
    resp = await api.client.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


async def test_readyz_checks_the_database_and_the_hot_store(api: Api) -> None:
    resp = await api.client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ready", "checks": {"database": "ok", "hot_store": "ok"}}


async def test_readyz_names_a_database_nothing_listens_for(api: Api) -> None:
    state = api.state
    real = state.engine
    dead = create_async_engine(f"postgresql+asyncpg://facefleet@127.0.0.1:{closed_port()}/db")
    state.engine = dead
    try:
        resp = await api.client.get("/readyz")
    finally:
        state.engine = real
        await dead.dispose()
    assert resp.status_code == 503
    body = resp.json()
    assert body["error"] == "NotReady"
    assert body["detail"].startswith("database unreachable: ")
    assert body["checks"] == {"database": "unreachable", "hot_store": "ok"}
    assert (await api.client.get("/healthz")).status_code == 200


async def test_readyz_fails_once_the_postgresql_database_is_gone(tmp_path: Path) -> None:
    url = await asyncio.to_thread(create_pg_database)
    try:
        async with running_api(make_settings(tmp_path, url)) as api:
            assert (await api.client.get("/readyz")).status_code == 200
            await asyncio.to_thread(drop_pg_database, url)
            resp = await api.client.get("/readyz")
            assert resp.status_code == 503, resp.text
            assert resp.json()["detail"].startswith("database unreachable: ")
            assert resp.json()["checks"]["database"] == "unreachable"
    finally:
        await asyncio.to_thread(drop_pg_database, url)


async def test_readyz_names_an_unreachable_hot_store(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse() -> None:
        raise ConnectionRefusedError

    monkeypatch.setattr(api.state.hot, "ping", refuse)
    resp = await api.client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["detail"] == "hot store unreachable: ConnectionRefusedError"
    assert resp.json()["checks"] == {"database": "ok", "hot_store": "unreachable"}


async def test_readyz_gives_up_on_a_hot_store_that_hangs(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hang() -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(api.state.hot, "ping", hang)
    monkeypatch.setattr(health_router, "CHECK_TIMEOUT", 0.05)
    resp = await api.client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["detail"] == "hot store unreachable: TimeoutError"


# -- metrics ------------------------------------------------------------------------------


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.heartbeats.inc()
    assert first.registry.get_sample_value("facefleet_heartbeats_total") == 1
    assert second.registry.get_sample_value("facefleet_heartbeats_total") == 0


async def test_metrics_follow_register_heartbeat_request_and_expiry(
    api: Api, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    families, before = await scrape(api)
    assert families >= FAMILIES

    worker = WorkerHandle(api, tenant, "metered-1")
    assert (await worker.register()).status_code == 200
    assert (await worker.heartbeat()).status_code == 200
    got = (await worker.request_camera()).json()
    assert got["assignment"]["camera_id"] == cam
    _, after = await scrape(api)

    assert value(before, "facefleet_workers", status="online") == 0
    assert value(after, "facefleet_workers", status="online") == 1
    assert value(after, "facefleet_workers", status="offline") == 0
    assert (
        value(after, "facefleet_heartbeats_total")
        == value(before, "facefleet_heartbeats_total") + 1
    )
    assert value(after, "facefleet_camera_assignments_total") == 1
    assert value(after, "facefleet_camera_assignment_seconds_count") == 1
    assert value(after, "facefleet_websocket_clients") == 0
    heartbeat = {
        "method": "POST",
        "route": "/v1/workers/{worker_id}/heartbeat",
        "status_class": "2xx",
    }
    assert value(after, "facefleet_http_request_duration_seconds_count", **heartbeat) == 1
    assert not any("metered-1" in dict(labels).get("route", "") for _, labels in after)

    clock.advance(api.settings.lease_ttl + 0.1)
    resp = await api.client.post("/v1/workers/cleanup", headers=tenant.headers())
    assert resp.status_code == 200, resp.text
    _, expired = await scrape(api)
    assert value(expired, "facefleet_leases_expired_total") == 1
    assert value(expired, "facefleet_workers", status="online") == 0


async def test_unmatched_paths_share_one_route_label(api: Api) -> None:
    assert (await api.client.get("/no/such/path-4711")).status_code == 404
    _, samples = await scrape(api)
    labels = {"method": "GET", "route": "unmatched", "status_class": "4xx"}
    assert value(samples, "facefleet_http_request_duration_seconds_count", **labels) == 1


# -- legacy paths -------------------------------------------------------------------------


async def test_legacy_registration_then_new_camera_request(api: Api) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "old-client")
    resp = await api.client.post(
        "/v1/registry/workers/register",
        json={"worker_id": worker.worker_id, "instance_id": worker.instance_id},
        headers=tenant.headers(Role.worker),
    )
    assert resp.status_code == 200, resp.text
    assert_deprecated(resp, "/v1/workers/register")
    worker.session_token = resp.json()["session_token"]

    got = await worker.request_camera()
    assert got.status_code == 200 and got.json()["assignment"]["camera_id"] == cam
    assert "Deprecation" not in got.headers

    listed = await api.client.get("/v1/registry/workers", headers=tenant.headers(Role.viewer))
    assert listed.status_code == 200
    assert [w["worker_id"] for w in listed.json()["items"]] == ["old-client"]
    assert_deprecated(listed, "/v1/workers")

    _, samples = await scrape(api)
    name = "facefleet_legacy_route_calls_total"
    assert value(samples, name, path="/v1/registry/workers/register") == 1
    assert value(samples, name, path="/v1/registry/workers") == 1


async def test_new_registration_then_legacy_heartbeat_and_camera_request(api: Api) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "new-client")
    assert (await worker.register()).status_code == 200

    beat = await api.client.post(
        "/v1/registry/workers/new-client/heartbeat", json={}, headers=worker.headers
    )
    assert beat.status_code == 200, beat.text
    assert beat.json()["status"] == "online"
    assert_deprecated(beat, "/v1/workers/new-client/heartbeat")

    got = await api.client.post("/v1/workers/new-client/request-camera", headers=worker.headers)
    assert got.status_code == 200, got.text
    assert got.json()["assignment"]["camera_id"] == cam
    assert_deprecated(got, "/v1/workers/new-client/camera/request")

    none_free = await api.client.post(
        "/v1/workers/new-client/request-camera", headers=worker.headers
    )
    assert none_free.status_code == 200
    assert none_free.json()["assignment"] is None and none_free.json()["retry_after"] > 0

    _, samples = await scrape(api)
    name = "facefleet_legacy_route_calls_total"
    assert value(samples, name, path="/v1/registry/workers/{worker_id}/heartbeat") == 1
    assert value(samples, name, path="/v1/workers/{worker_id}/request-camera") == 2
    assert value(samples, "facefleet_heartbeats_total") == 1


async def test_legacy_paths_keep_auth_and_session_rules(api: Api) -> None:
    tenant = await api.tenant()
    worker = WorkerHandle(api, tenant, "strict")
    await worker.register()
    path = "/v1/workers/strict/request-camera"

    no_key = await api.client.post(path)
    assert no_key.status_code == 401
    assert_deprecated(no_key, "/v1/workers/strict/camera/request")

    no_session = await api.client.post(path, headers=tenant.headers(Role.worker))
    assert no_session.status_code == 403 and no_session.json()["error"] == "Forbidden"
    assert_deprecated(no_session, "/v1/workers/strict/camera/request")

    unknown = await api.client.post(
        "/v1/registry/workers/ghost/heartbeat", headers=tenant.headers()
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "WorkerNotFound"
    assert_deprecated(unknown, "/v1/workers/ghost/heartbeat")

    reader_register = await api.client.post(
        "/v1/registry/workers/register",
        json={"worker_id": "nope"},
        headers=tenant.headers(Role.viewer),
    )
    assert reader_register.status_code == 403


async def test_legacy_link_header_quotes_the_worker_id(api: Api) -> None:
    tenant = await api.tenant()
    resp = await api.client.post(
        "/v1/registry/workers/a%3E%3B%20rel%3Dx/heartbeat", headers=tenant.headers()
    )
    assert resp.status_code == 422
    assert_deprecated(resp, "/v1/workers/a%3E%3B%20rel%3Dx/heartbeat")


async def test_openapi_marks_only_the_old_paths_deprecated(api: Api) -> None:
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    old = [
        ("/v1/registry/workers/register", "post"),
        ("/v1/registry/workers/{worker_id}/heartbeat", "post"),
        ("/v1/registry/workers", "get"),
        ("/v1/workers/{worker_id}/request-camera", "post"),
    ]
    for path, method in old:
        assert paths[path][method].get("deprecated") is True, path
    assert not paths["/v1/workers/{worker_id}/camera/request"]["post"].get("deprecated")
    assert not paths["/v1/workers/{worker_id}/heartbeat"]["post"].get("deprecated")


async def test_the_event_loop_lag_is_measured_and_a_stall_shows(api: Api) -> None:
    async def probes() -> float:
        _, samples = await scrape(api)
        return value(samples, "facefleet_event_loop_lag_seconds_count")

    await asyncio.sleep(LOOP_PROBE_PERIOD * 5)
    assert await probes() >= 2
    _, before = await scrape(api)
    time.sleep(0.5)  # noqa: ASYNC251 - stalls the loop the app runs on, which is the point
    await asyncio.sleep(LOOP_PROBE_PERIOD * 2)
    _, after = await scrape(api)
    slow = "facefleet_event_loop_lag_seconds_bucket"
    stalled = value(after, slow, le="+Inf") - value(after, slow, le="0.25")
    assert stalled - (value(before, slow, le="+Inf") - value(before, slow, le="0.25")) >= 1


async def test_full_garbage_collections_are_timed(api: Api) -> None:
    full = {"generation": "2"}
    _, before = await scrape(api)
    gc.collect()
    _, after = await scrape(api)
    count = "facefleet_gc_pause_seconds_count"
    assert value(after, count, **full) >= value(before, count, **full) + 1
    assert value(after, "facefleet_gc_pause_seconds_sum", **full) > 0

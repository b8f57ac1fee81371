"""Hand-made inputs that once answered 500 (or an undocumented 400), each now a 4xx with a
message: integers beyond their columns, times beyond the years 1970-9999, JSON no store can
hold, bodies too deep or not UTF-8; values stored before these rules, repaired on read; an
unexpected error as the API's JSON error with a request id; Allow, 413, ``q`` and JPEG rules.
Where the database matters the tests run on every backend (SQLite, PostgreSQL, PostgreSQL
with Redis)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import update

from facefleet.api.deps import authenticate
from facefleet.api.realtime.snapshot import build_snapshot
from facefleet.api.request_ids import HEADER, new_request_id
from facefleet.api.security import Role
from facefleet.api.storage.db.models import Worker
from facefleet.protocol.ids import INT32_MAX, INT64_MAX
from facefleet.protocol.json_values import MAX_DEPTH, InvalidJson, check_json_value
from tests.fixtures.harness import (
    Api,
    Tenant,
    WorkerHandle,
    add_cameras,
    make_settings,
    running_api,
)

pytestmark = pytest.mark.timeout(120)

BEYOND_INT64 = [2**63, -(2**63) - 1, 10**30]
# Beyond an INTEGER id column (32 bits on PostgreSQL), and ids that name nothing.
BAD_IDS = [*BEYOND_INT64, 2**31, 0, -1]


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Api]:
    """For rules the database plays no part in: SQLite, in-process hot store."""
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}")
    async with running_api(settings) as running:
        yield running


def assert_invalid(resp: httpx.Response, field: str) -> None:
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "ValidationError"
    assert any(f["field"].startswith(field) for f in body["fields"]), body


async def registered(api: Api, tenant: Tenant, worker_id: str = "w-1") -> WorkerHandle:
    worker = WorkerHandle(api, tenant, worker_id)
    assert (await worker.register(capacity=2)).status_code == 200
    return worker


# -- integers ---------------------------------------------------------------------------

ID_PATHS = [
    "/v1/cameras/{x}",
    "/v1/people/{x}",
    "/v1/people/{x}/negatives",
    "/v1/people/faces/{x}/thumbnail",
    "/v1/strangers/{x}",
    "/v1/webhooks/{x}",
    "/v1/webhooks/1/deliveries/{x}",
    "/v1/sightings/{x}/crop",
    "/v1/workers/w-1/commands/{x}",
]


async def test_integers_beyond_their_columns_are_422_everywhere(api: Api) -> None:
    tenant = await api.tenant()
    worker = await registered(api, tenant)
    admin = tenant.headers()
    for template in ID_PATHS:
        for bad in BAD_IDS:
            if bad == 2**31 and template.startswith(("/v1/sightings", "/v1/webhooks/1/")):
                continue  # BIGINT ids: 2^31 is a valid id there
            resp = await api.client.get(template.format(x=bad), headers=admin)
            assert_invalid(resp, "path.")
    for path in ("/v1/cameras", "/v1/people", "/v1/sightings", "/v1/workers"):
        for bad in [*BEYOND_INT64, -1]:
            assert_invalid(
                await api.client.get(path, params={"offset": bad}, headers=admin), "query.offset"
            )
    # The legacy list takes the same query model.
    resp = await api.client.get(
        "/v1/registry/workers", params={"offset": 2**63}, headers=tenant.headers(Role.viewer)
    )
    assert_invalid(resp, "query.offset")
    assert resp.headers["Deprecation"] == "true"
    for name in ("camera_id", "person_id", "stranger_id"):
        resp = await api.client.get("/v1/sightings", params={name: 2**63}, headers=admin)
        assert_invalid(resp, f"query.{name}")

    # Beyond 64 bits the body parser refuses them; beyond 32 bits, the column's type.
    for body in (
        {"camera_id": 2**63, "epoch": 1},
        {"camera_id": 1, "epoch": 2**63},
        {"camera_id": 2**31, "epoch": 1},
        {"camera_id": 1, "epoch": 2**31},
        {"camera_id": 1, "epoch": -1},
    ):
        resp = await api.client.post(
            "/v1/workers/w-1/camera/release", json=body, headers=worker.headers
        )
        assert_invalid(resp, "body")
    sighting = {"track_id": "t", "person_id": None, "first_seen": 1e9, "last_seen": 1e9}
    for batch in (
        {"camera_id": 1, "epoch": 2**63, "sightings": [{**sighting, "frames": 1}]},
        {"camera_id": 1, "epoch": 1, "sightings": [{**sighting, "frames": 2**63}]},
        {"camera_id": 1, "epoch": 2**31, "sightings": [{**sighting, "frames": 1}]},
        {"camera_id": 1, "epoch": 1, "sightings": [{**sighting, "frames": 2**31}]},
        {"camera_id": 1, "epoch": 1, "sightings": [{**sighting, "frames": 1, "person_id": -1}]},
    ):
        resp = await api.client.post(
            "/v1/workers/w-1/sightings", json=batch, headers=worker.headers
        )
        assert_invalid(resp, "body")
    heartbeats: list[dict[str, Any]] = [
        {"streams": [{"camera_id": 2**63, "epoch": 1, "state": "streaming"}]},
        {"streams": [{"camera_id": 2**31, "epoch": 1, "state": "streaming"}]},
        {"streams": [{"camera_id": 1, "epoch": 1, "state": "streaming", "fps": False}]},
        {"metrics": {"frames": 2**64}},
    ]
    for path in ("/v1/workers/w-1/heartbeat", "/v1/registry/workers/w-1/heartbeat"):
        for body in heartbeats:
            assert_invalid(await api.client.post(path, json=body, headers=worker.headers), "body")


async def test_the_largest_ids_and_offsets_reach_the_database(api: Api) -> None:
    """The bounds are the columns' own: the largest value is looked up, not refused."""
    tenant = await api.tenant()
    admin = tenant.headers()
    for path in ("/v1/cameras/{x}", "/v1/people/{x}", "/v1/strangers/{x}"):
        resp = await api.client.get(path.format(x=INT32_MAX), headers=admin)
        assert resp.status_code == 404, resp.text
    resp = await api.client.get(f"/v1/sightings/{INT64_MAX}/crop", headers=admin)
    assert resp.status_code == 404, resp.text
    for path in ("/v1/cameras", "/v1/people", "/v1/sightings", "/v1/workers"):
        resp = await api.client.get(path, params={"offset": INT64_MAX}, headers=admin)
        assert resp.status_code == 200, resp.text
        assert resp.json()["items"] == []


# -- times ------------------------------------------------------------------------------


async def test_times_beyond_the_supported_years_are_422(api: Api) -> None:
    tenant = await api.tenant()
    viewer = tenant.headers(Role.viewer)
    bad_instants = [
        "9999-12-31T23:59:59-14:00",  # the year 10000 in UTC
        "9999-06-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "0.5",  # the schema says date-time: not Unix seconds
        "1700000000",
    ]
    for name in ("since", "until"):
        for value in bad_instants:
            resp = await api.client.get("/v1/sightings", params={name: value}, headers=viewer)
            assert_invalid(resp, f"query.{name}")
    assert_invalid(
        await api.client.get("/v1/strangers", params={"since": bad_instants[0]}, headers=viewer),
        "query.since",
    )
    for value in ("2026-01-01T00:00:00+14:00", "2026-01-01T00:00:00", "1970-01-01T00:00:00Z"):
        resp = await api.client.get("/v1/sightings", params={"since": value}, headers=viewer)
        assert resp.status_code == 200, resp.text

    worker = await registered(api, tenant)
    for seen in (1e300, -1.0, 0, 253402300800.0):
        batch = {
            "camera_id": 1,
            "epoch": 1,
            "sightings": [
                {
                    "track_id": "t",
                    "person_id": None,
                    "first_seen": seen,
                    "last_seen": 1e9,
                    "frames": 1,
                }
            ],
        }
        resp = await api.client.post(
            "/v1/workers/w-1/sightings", json=batch, headers=worker.headers
        )
        assert_invalid(resp, "body.sightings.0.first_seen")


# -- JSON no store can hold ---------------------------------------------------------------

UNENCODABLE = [
    ('{"x": "\\ud800"}', "lone UTF-16 surrogate"),
    ('{"x": "a\\u0000b"}', "U+0000"),
    ('{"x\\udfff": 1}', "lone UTF-16 surrogate"),
    ('{"x": NaN}', "NaN"),
    ('{"x": Infinity}', "Infinity"),
    ('{"x": -Infinity}', "Infinity"),
    ('{"x": 1e999}', "finite"),
]


def raw_bodies(field: str, extra: str = "") -> list[tuple[bytes, str]]:
    """Bodies whose free-form ``field`` holds an unencodable value; then bodies that are not
    UTF-8, or nest too deeply."""
    out = [(f'{{{extra}"{field}": {value}}}'.encode(), why) for value, why in UNENCODABLE]
    out.append((b'{"' + field.encode() + b'": {"x": "\xff\xfe"}}', "not UTF-8"))
    out.append((b"[" * 300 + b"]" * 300, "nested deeper"))
    return out


async def test_unencodable_json_is_422_after_the_role_check(api: Api) -> None:
    tenant = await api.tenant()
    worker = await registered(api, tenant)
    resp = await api.client.post(
        "/v1/workers/w-1/commands", json={"type": "snapshot"}, headers=tenant.headers()
    )
    assert resp.status_code in (200, 201), resp.text
    command_id = resp.json()["id"]
    cases: list[tuple[str, str, dict[str, str], dict[str, str], str]] = [
        # path, field, permitted headers, refused headers (403), extra fields
        ("/v1/people", "attributes", tenant.headers(), tenant.headers(Role.viewer), '"name": "a",'),
        (
            "/v1/workers/w-1/commands",
            "payload",
            tenant.headers(),
            tenant.headers(Role.viewer),
            '"type": "snapshot",',
        ),
        (
            f"/v1/workers/w-1/commands/{command_id}/ack",
            "result",
            worker.headers,
            tenant.headers(Role.viewer),
            "",
        ),
        ("/v1/workers/w-1/heartbeat", "metrics", worker.headers, tenant.headers(Role.viewer), ""),
        (
            "/v1/registry/workers/w-1/heartbeat",
            "metrics",
            worker.headers,
            tenant.headers(Role.viewer),
            "",
        ),
    ]
    for path, field, permitted, refused, extra in cases:
        for body, why in raw_bodies(field, extra):
            json_type = {"Content-Type": "application/json"}
            no_key = await api.client.post(path, content=body, headers=json_type)
            assert no_key.status_code == 401, (path, body, no_key.text)
            forbidden = await api.client.post(path, content=body, headers={**refused, **json_type})
            assert forbidden.status_code == 403, (path, body, forbidden.text)
            resp = await api.client.post(path, content=body, headers={**permitted, **json_type})
            assert_invalid(resp, "body")
            assert why in resp.json()["detail"], (path, body, resp.text)
    # Nothing of it reached a reader.
    people = await api.client.get("/v1/people", headers=tenant.headers(Role.viewer))
    assert people.json()["total"] == 0
    listed = await api.client.get("/v1/workers", headers=tenant.headers(Role.viewer))
    assert listed.status_code == 200 and listed.json()["items"][0]["metrics"] == {}


async def test_values_stored_before_the_rules_are_repaired_on_read(api: Api) -> None:
    """A lone surrogate in a worker's metrics (the old legacy heartbeat stored it) breaks no
    reader: the lists, the worker, the legacy list and the WebSocket snapshot."""
    tenant = await api.tenant()
    await registered(api, tenant)
    bad = {"note": "ok\ud800", "nested": {"k\udfff": "x\x00y"}}
    outcome = await api.state.hot.heartbeat(
        tenant.id, "w-1", now=api.state.clock(), ttl=api.settings.lease_ttl, metrics=bad
    )
    assert outcome is not None
    if api.settings.resolved_database_url.startswith("sqlite"):
        # Stored in the database too (PostgreSQL's JSONB never held such text).
        async with api.state.sessions() as session:
            await session.execute(
                update(Worker).where(Worker.worker_id == "w-1").values(metrics=bad)
            )
            await session.commit()
    viewer = tenant.headers(Role.viewer)
    repaired = {"note": "ok\ufffd", "nested": {"k\ufffd": "x\ufffdy"}}
    for path in ("/v1/workers", "/v1/registry/workers"):
        resp = await api.client.get(path, headers=viewer)
        assert resp.status_code == 200, resp.text
        assert resp.json()["items"][0]["metrics"] == repaired
    resp = await api.client.get("/v1/workers/w-1", headers=viewer)
    assert resp.status_code == 200, resp.text
    assert resp.json()["metrics"] == repaired
    principal = await authenticate(api.state, f"Bearer {tenant.keys[Role.viewer]}")
    snapshot = await build_snapshot(api.state, principal)
    json.dumps(snapshot, ensure_ascii=False).encode("utf-8")  # what the WebSocket sends
    assert snapshot["workers"][0]["metrics"] == repaired
    if api.settings.resolved_database_url.startswith("sqlite"):
        # Offline, from the database row alone.
        await api.state.hot.remove_worker(tenant.id, "w-1")
        resp = await api.client.get("/v1/workers/w-1", headers=viewer)
        assert resp.status_code == 200, resp.text
        assert resp.json()["metrics"] == repaired


# -- one error shape ----------------------------------------------------------------------


async def test_an_unexpected_error_is_the_json_error_with_a_request_id(
    embedded: Api, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom() -> None:
        raise RuntimeError("something no handler expected")

    embedded.app.router.add_api_route("/v1/boom", boom)
    with caplog.at_level(logging.ERROR, logger="facefleet.api.request_ids"):
        resp = await embedded.client.get("/v1/boom")
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    request_id = resp.headers[HEADER]
    assert body["error"] == "InternalError" and body["request_id"] == request_id
    assert "something no handler expected" not in resp.text  # the log has it, not the client
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "RuntimeError: something no handler expected" in caplog.text

    resp = await embedded.client.get("/v1/boom", headers={HEADER: "edge-7f3a.1"})
    assert resp.headers[HEADER] == "edge-7f3a.1" and resp.json()["request_id"] == "edge-7f3a.1"
    for insane in ("a" * 200, "two words", 'quote"d'):
        resp = await embedded.client.get("/healthz", headers={HEADER: insane})
        assert resp.headers[HEADER] != insane and len(resp.headers[HEADER]) == 32


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": [1, {"b": "x\x00"}]}, "$.a[1].b: U+0000 is not allowed in text"),
        ({"a": [1, 2**70]}, "$.a[1]: integers must fit in 64 bits"),
        ({"k\ud800": 1}, "$: a lone UTF-16 surrogate is not text"),
        ([[[float("nan")]]], "$[0][0][0]: numbers must be finite"),
        ({"x": {"y": float("-inf")}}, "$.x.y: numbers must be finite"),
        ("\ud800", "$: a lone UTF-16 surrogate is not text"),
        (-(2**63) - 1, "$: integers must fit in 64 bits"),
        ({"a": {"b": {"c": 1}}}, "nested deeper than 2 levels"),
    ],
)
def test_a_json_value_no_store_can_hold_is_refused_saying_where(value: Any, message: str) -> None:
    with pytest.raises(InvalidJson) as refused:
        check_json_value(value, max_depth=2 if message.startswith("nested") else MAX_DEPTH)
    assert str(refused.value) == message


def test_a_json_value_every_store_can_hold_passes_unchanged() -> None:
    value: dict[str, Any] = {"a": [True, None, 2**63 - 1, -(2**63), 1.5, "é", {"b": []}], "": {}}
    assert check_json_value(value) is value


def test_new_request_ids_are_unique_in_a_process_and_in_its_forked_children() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(len(i) == 32 and i.isalnum() for i in ids)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # a server forked after import: its ids must not repeat its parent's
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        in_child = pipe.read()
    assert len(in_child) == 32 and in_child[:20] != next(iter(ids))[:20]


# -- schema gaps --------------------------------------------------------------------------


async def test_405_lists_every_method_of_the_path(embedded: Api) -> None:
    tenant = await embedded.tenant()
    cases = {
        ("PUT", "/v1/cameras"): "GET, POST",
        ("PUT", "/v1/cameras/1"): "DELETE, GET, PATCH",
        ("PATCH", "/v1/webhooks/event-types"): "GET",
        ("PUT", "/v1/workers/stats"): "GET",
        ("PUT", "/v1/workers/register"): "POST",
    }
    for (method, path), allow in cases.items():
        resp = await embedded.client.request(method, path, headers=tenant.headers())
        assert resp.status_code == 405, (method, path, resp.text)
        assert resp.headers["Allow"] == allow, (method, path)
        assert resp.json()["error"] == "MethodNotAllowed"


async def test_413_is_documented_where_a_body_is_taken(embedded: Api) -> None:
    schema = (await embedded.client.get("/openapi.json")).json()
    with_body = [
        (method, path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    assert len(with_body) > 20
    for method, path in with_body:
        assert "413" in schema["paths"][path][method]["responses"], (method, path)
    tenant = await embedded.tenant()
    resp = await embedded.client.post(
        "/v1/people",
        content=b'{"name": "' + b"a" * (embedded.settings.max_body_bytes + 1) + b'"}',
        headers={**tenant.headers(), "Content-Type": "application/json"},
    )
    assert resp.status_code == 413 and resp.json()["error"] == "PayloadTooLarge"


async def test_an_empty_source_url_is_documented_invalid(embedded: Api) -> None:
    schema = (await embedded.client.get("/openapi.json")).json()
    assert (
        schema["components"]["schemas"]["CameraCreate"]["properties"]["source_url"]["minLength"]
        == 1
    )
    tenant = await embedded.tenant()
    resp = await embedded.client.post(
        "/v1/cameras", json={"name": "c", "source_url": ""}, headers=tenant.headers()
    )
    assert_invalid(resp, "body.source_url")
    [camera] = await add_cameras(embedded, tenant, 1)
    resp = await embedded.client.patch(
        f"/v1/cameras/{camera}", json={"source_url": ""}, headers=tenant.headers()
    )
    assert_invalid(resp, "body.source_url")


async def test_percent_and_underscore_in_q_are_literal(api: Api) -> None:
    tenant = await api.tenant()
    for name in ("100% real", "a_b", "axb", "plain"):
        resp = await api.client.post("/v1/people", json={"name": name}, headers=tenant.headers())
        assert resp.status_code == 201, resp.text

    async def names(q: str) -> list[str]:
        resp = await api.client.get("/v1/people", params={"q": q}, headers=tenant.headers())
        assert resp.status_code == 200, resp.text
        return sorted(p["name"] for p in resp.json()["items"])

    assert await names("%") == ["100% real"]
    assert await names("_") == ["a_b"]
    assert await names("a_") == ["a_b"]
    assert await names("\\") == []


async def test_a_malformed_form_is_422_after_the_role_check(embedded: Api) -> None:
    tenant = await embedded.tenant()
    resp = await embedded.client.post("/v1/people", json={"name": "p"}, headers=tenant.headers())
    person = resp.json()["id"]
    boundary = "7c5156fb04a2177cf9e322ad31ebde44"
    form = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    body = f"--{boundary}\r\nNone--{boundary}--\r\n".encode()
    path = f"/v1/people/{person}/faces"
    viewer = await embedded.client.post(
        path, content=body, headers=tenant.headers(Role.viewer) | form
    )
    assert viewer.status_code == 403, viewer.text
    resp = await embedded.client.post(path, content=body, headers=tenant.headers() | form)
    assert_invalid(resp, "body")
    assert "not a valid form" in resp.json()["detail"]


async def test_a_truncated_jpeg_with_an_end_marker_is_not_enrolled(embedded: Api) -> None:
    tenant = await embedded.tenant()
    resp = await embedded.client.post("/v1/people", json={"name": "p"}, headers=tenant.headers())
    person = resp.json()["id"]
    noise = np.random.default_rng(5).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", noise)
    assert ok
    data = encoded.tobytes()
    cut = data[: len(data) // 2] + b"\xff\xd9"
    resp = await embedded.client.post(
        f"/v1/people/{person}/faces",
        files={"files": ("cut.jpg", cut, "image/jpeg")},
        headers=tenant.headers(),
    )
    assert resp.status_code == 422, resp.text
    assert "corrupt or truncated" in resp.json()["detail"]

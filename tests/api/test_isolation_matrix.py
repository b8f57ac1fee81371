"""Every route of the OpenAPI schema, read at test time, called by every kind of caller: the
admin, worker and viewer of tenant A and of tenant B, no key, a revoked key, a garbage key,
and a worker key with another worker's session. The status each must get follows from the
role the route declares (its dependencies in ``facefleet.api.deps``), so a new route is
covered by itself. No cell other than A's own permitted calls may change A's data."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import select
from starlette.routing import BaseRoute

from facefleet.api import deps
from facefleet.api.security import Role
from facefleet.api.storage.db.models import Base
from tests.fixtures.harness import Api, FakeClock, Tenant, WorkerHandle, make_settings, running_api

pytestmark = pytest.mark.timeout(120)

ALL = frozenset(Role)
# What each dependency of facefleet.api.deps lets through; a route's roles are the
# intersection over every one it depends on (directly or through another dependency).
ROLE_DEPENDENCIES: dict[Callable[..., Any], frozenset[Role]] = {
    deps.get_principal: ALL,
    deps.require_reader: frozenset({Role.admin, Role.viewer}),
    deps.require_admin: frozenset({Role.admin}),
    deps.require_worker_or_admin: frozenset({Role.admin, Role.worker}),
}
MARK = uuid.uuid4().hex[:10]  # in every name of tenant A's data, to find it in answers


@dataclass(frozen=True)
class Caller:
    name: str
    tenant: str | None  # "A", "B", or None for no valid key
    role: Role | None
    headers: dict[str, str]
    own_session: bool = True  # False: a worker key with another worker's session


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    roles: frozenset[Role] | None  # None: public
    statuses: frozenset[int]
    body: bool

    @property
    def acts_as_worker(self) -> bool:
        """A worker key acts on this path as the worker it names: only with its session."""
        return "{worker_id}" in self.path and Role.worker in (self.roles or ())

    @property
    def names_a_resource(self) -> bool:
        return "{" in self.path


def required_roles(dependant: Dependant) -> frozenset[Role] | None:
    found: frozenset[Role] | None = None
    stack = [dependant]
    while stack:
        current = stack.pop()
        roles = ROLE_DEPENDENCIES.get(current.call) if current.call is not None else None
        if roles is not None:
            found = roles if found is None else found & roles
        stack.extend(current.dependencies)
    return found


def flatten(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """The app's routes, those of included routers among them."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from flatten(inner.routes)
        else:
            yield route


def routes(api: Api, schema: dict[str, Any]) -> list[Route]:
    by_key = {
        (method, route.path_format): route
        for route in flatten(api.app.routes)
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    out = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            route = by_key[(method.upper(), path)]
            out.append(
                Route(
                    method.upper(),
                    path,
                    required_roles(route.dependant),
                    frozenset(int(s) for s in operation["responses"]),
                    "requestBody" in operation,
                )
            )
    return out


def sample(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A small value of a JSON schema: enough to get past validation where it can."""
    if "$ref" in schema:
        return sample(components[schema["$ref"].rsplit("/", 1)[1]], components)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return sample(options[0], components)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: sample(props[k], components) for k in schema.get("required", []) if k in props}
    if kind == "array":
        return [sample(schema.get("items", {}), components)] * schema.get("minItems", 0)
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    return "x" * max(1, schema.get("minLength", 1))


@dataclass
class World:
    api: Api
    a: Tenant
    b: Tenant
    ids: dict[str, str]
    callers: list[Caller]
    bodies: dict[tuple[str, str], Any]


async def revoked_key(api: Api, tenant: Tenant) -> str:
    """A key of the tenant, revoked through the API as an operator revokes one."""
    created = await api.client.post("/v1/keys", json={"role": "admin"}, headers=tenant.headers())
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    whoami = await api.client.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"})
    assert whoami.status_code == 200  # cached now: the revocation must reach the cache
    revoked = await api.client.delete(f"/v1/keys/{created.json()['id']}", headers=tenant.headers())
    assert revoked.status_code == 200, revoked.text
    return key


async def spare_key(api: Api, tenant: Tenant) -> str:
    """The id of a key of the tenant that the matrix's own calls may rotate and revoke."""
    created = await api.client.post(
        "/v1/keys", json={"role": "viewer", "name": "spare"}, headers=tenant.headers()
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(time.time())
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}", presence_wait=0.2
    )
    async with running_api(settings, clock) as api:
        a, b = await api.tenant(f"a-{MARK}"), await api.tenant()
        c = api.client
        admin = a.headers()
        cam = (
            await c.post(
                "/v1/cameras",
                json={"name": f"cam-{MARK}", "source_url": "rtsp://u:pw@10.0.0.1/s"},
                headers=admin,
            )
        ).json()["id"]
        w1, w2 = WorkerHandle(api, a, "w1"), WorkerHandle(api, a, "w2")
        wb = WorkerHandle(api, b, "wb1")
        for worker in (w1, w2, wb):
            assert (await worker.register()).status_code == 200
        lease = (await w1.request_camera()).json()["assignment"]
        person = (await c.post("/v1/people", json={"name": f"p-{MARK}"}, headers=admin)).json()
        other = (await c.post("/v1/people", json={"name": f"q-{MARK}"}, headers=admin)).json()
        command = (
            await c.post("/v1/workers/w1/commands", json={"type": "snapshot"}, headers=admin)
        ).json()
        hook = (
            await c.post(
                "/v1/webhooks",
                json={"url": "https://hooks.example.com/a", "event_types": ["*"]},
                headers=admin,
            )
        ).json()
        now = clock()
        seen = await c.post(
            "/v1/workers/w1/sightings",
            json={
                "camera_id": cam,
                "epoch": lease["epoch"],
                "sightings": [
                    {
                        "track_id": "t1",
                        "person_id": None,
                        "first_seen": now,
                        "last_seen": now,
                        "frames": 1,
                    }
                ],
            },
            headers=w1.headers,
        )
        assert seen.status_code == 200, seen.text
        ids = {
            "worker_id": "w1",
            "camera_id": str(cam),
            "person_id": str(person["id"]),
            "command_id": str(command["id"]),
            "webhook_id": str(hook["id"]),
            "sighting_id": str(seen.json()["ids"][0]),
            # Ids of kinds tenant A has none of yet: the first of each it would get.
            "face_id": "1",
            "negative_id": "1",
            "stranger_id": "1",
            "delivery_id": "1",
            "key_id": await spare_key(api, a),
        }
        worker_key = {"Authorization": f"Bearer {a.keys[Role.worker]}"}
        callers = [
            Caller("A admin", "A", Role.admin, admin),
            Caller("A worker", "A", Role.worker, w1.headers),
            Caller("A viewer", "A", Role.viewer, a.headers(Role.viewer)),
            Caller("B admin", "B", Role.admin, b.headers()),
            Caller("B worker", "B", Role.worker, wb.headers),
            Caller("B viewer", "B", Role.viewer, b.headers(Role.viewer)),
            Caller("no key", None, None, {}),
            Caller(
                "revoked key", None, None, {"Authorization": f"Bearer {await revoked_key(api, a)}"}
            ),
            Caller("garbage key", None, None, {"Authorization": "Bearer ff_admin_" + "x" * 43}),
            Caller(
                "w2's session",
                "A",
                Role.worker,
                {**worker_key, "X-Worker-Session": w2.session_token},
                own_session=False,
            ),
        ]
        bodies = {
            ("POST", "/v1/workers/{worker_id}/camera/release"): {
                "camera_id": cam,
                "epoch": lease["epoch"],
            },
            ("POST", "/v1/workers/{worker_id}/sightings"): seen.request.content,
            ("POST", "/v1/people/{person_id}/merge"): {"into_person_id": other["id"]},
            ("POST", "/v1/people/{person_id}/faces/{face_id}/move"): {"person_id": other["id"]},
            ("POST", "/v1/sightings/{sighting_id}/assign"): {"person_id": person["id"]},
            ("POST", "/v1/strangers/{stranger_id}/promote"): {"name": "n"},
            ("PATCH", "/v1/cameras/{camera_id}"): {"target_fps": 3},
            ("PATCH", "/v1/webhooks/{webhook_id}"): {"description": "d"},
        }
        yield World(api, a, b, ids, callers, bodies)


def expected(route: Route, caller: Caller) -> int | None:
    """The status this caller must get, or None for A's permitted calls (any documented
    status but 401/403)."""
    if route.roles is None:
        return 200
    if caller.role is None:
        return 401
    if caller.role not in route.roles:
        return 403
    if caller.tenant == "A" and not caller.own_session and route.acts_as_worker:
        return 403
    if caller.tenant == "B" and route.names_a_resource:
        return 404  # exactly as for an id that does not exist
    return None


async def call(
    world: World, route: Route, caller: Caller, components: dict[str, Any], schema: dict[str, Any]
) -> httpx.Response:
    path = re.sub(r"\{(\w+)\}", lambda m: world.ids[m.group(1)], route.path)
    kwargs: dict[str, Any] = {"headers": caller.headers}
    if route.body:
        body = world.bodies.get((route.method, route.path))
        if isinstance(body, bytes):
            kwargs["content"] = body
            kwargs["headers"] = {**caller.headers, "Content-Type": "application/json"}
        else:
            content = schema["paths"][route.path][route.method.lower()]["requestBody"]["content"]
            if "multipart/form-data" in content:
                kwargs["files"] = {"files": ("face.jpg", b"not a photo", "image/jpeg")}
            else:
                kwargs["json"] = body or sample(content["application/json"]["schema"], components)
    return await world.api.client.request(route.method, path, **kwargs)


async def snapshot(world: World) -> dict[str, Any]:
    """Tenant A's data: every row holding its tenant id, and its live worker records."""
    tables: dict[str, Any] = {}
    async with world.api.state.sessions() as session:
        for table in Base.metadata.sorted_tables:
            if "tenant_id" in table.c:
                # A key's last use is bookkeeping every authenticated call may update.
                columns = [c for c in table.c if c.name != "last_used_at"]
                query = select(*columns).where(table.c.tenant_id == world.a.id)
                rows = await session.execute(query)
                tables[table.name] = sorted(map(repr, rows.all()))
    hot = sorted(map(repr, await world.api.state.hot.list_workers(world.a.id)))
    return {"tables": tables, "hot": hot}


async def test_every_route_answers_every_caller_as_its_role_says(world: World) -> None:
    schema = (await world.api.client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    table = routes(world.api, schema)
    assert len(table) > 50 and all(r.roles is not None for r in table if r.path.startswith("/v1/"))
    failures: list[str] = []
    before = await snapshot(world)
    # Every call but A's own permitted ones first: none of them may change A's data.
    permitted: list[tuple[Route, Caller]] = []
    for route in table:
        for caller in world.callers:
            want = expected(route, caller)
            if want is None and caller.tenant == "A":
                permitted.append((route, caller))
                continue
            resp = await call(world, route, caller, components, schema)
            where = f"{route.method} {route.path} as {caller.name}: {resp.status_code}"
            if want is not None and resp.status_code != want:
                failures.append(f"{where}, expected {want}: {resp.text[:200]}")
            elif want is None and (
                resp.status_code in (401, 403) or resp.status_code not in route.statuses
            ):
                failures.append(f"{where}, expected a documented status: {resp.text[:200]}")
            if caller.tenant == "B" and (MARK in resp.text or world.a.id in resp.text):
                failures.append(f"{where} shows tenant A's data: {resp.text[:200]}")
    assert not failures, "\n".join(failures)
    assert await snapshot(world) == before
    for route, caller in permitted:
        resp = await call(world, route, caller, components, schema)
        if resp.status_code in (401, 403) or resp.status_code not in route.statuses:
            failures.append(
                f"{route.method} {route.path} as {caller.name}: {resp.status_code} "
                f"(undocumented or refused): {resp.text[:200]}"
            )
    assert not failures, "\n".join(failures)


def normalized(resp: httpx.Response, *ids: str) -> tuple[int, str]:
    text = resp.text
    for value in ids:
        text = re.sub(rf"\b{re.escape(value)}\b", "<id>", text)
    return resp.status_code, text


async def test_another_tenants_ids_answer_as_ids_that_do_not_exist(world: World) -> None:
    """No route tells tenant B whether an id is tenant A's (or anything about it, its epoch
    least of all): every answer is the one for an id that exists nowhere."""
    schema = (await world.api.client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    missing = {k: ("no-such-worker" if k == "worker_id" else "987654") for k in world.ids}
    absent = World(world.api, world.a, world.b, missing, world.callers, world.bodies)
    oracles = []
    for route in routes(world.api, schema):
        if not route.names_a_resource or route.roles is None:
            continue
        for caller in world.callers:
            if caller.tenant != "B":
                continue
            theirs = await call(world, route, caller, components, schema)
            nowhere = await call(absent, route, caller, components, schema)
            used = [world.ids[n] for n in re.findall(r"\{(\w+)\}", route.path)]
            gone = [missing[n] for n in re.findall(r"\{(\w+)\}", route.path)]
            if normalized(theirs, *used) != normalized(nowhere, *gone):
                oracles.append(
                    f"{route.method} {route.path} as {caller.name}: "
                    f"{theirs.status_code} {theirs.text[:150]} vs "
                    f"{nowhere.status_code} {nowhere.text[:150]}"
                )
    # Ids in bodies: B's own worker naming A's camera, and a camera that does not exist.
    worker = next(c for c in world.callers if c.name == "B worker")
    cam, ghost = world.ids["camera_id"], "987654"
    for path, body in (
        ("/v1/workers/wb1/camera/release", {"epoch": 7}),
        (
            "/v1/workers/wb1/sightings",
            {
                "epoch": 7,
                "sightings": [
                    {
                        "track_id": "t",
                        "person_id": None,
                        "first_seen": 1.0,
                        "last_seen": 1.0,
                        "frames": 1,
                    }
                ],
            },
        ),
    ):
        answers = []
        for camera in (cam, ghost):
            sent = {**body, "camera_id": int(camera)}
            resp = await world.api.client.post(path, json=sent, headers=worker.headers)
            answers.append(normalized(resp, camera))
        assert answers[0][0] == 409, answers
        if answers[0] != answers[1]:
            oracles.append(f"POST {path}: {answers[0]} vs {answers[1]}")
    assert not oracles, "\n".join(oracles)

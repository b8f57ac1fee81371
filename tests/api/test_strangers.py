"""Strangers on the real fixture photos and the three backends: unknown sightings clustered
per tenant and incrementally (by the worker's embedding or the control plane's own from the
crop), listed and filtered, announced as events, promoted to a person with all their
sightings; and the clusterer running on the leader of a live control plane."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect

from facefleet.api.app import create_app
from facefleet.api.security import Role
from facefleet.api.storage.db.models import Sighting
from facefleet.api.storage.db.sightings_repo import PendingSighting
from facefleet.api.strangers.clusterer import StrangerClusterer
from facefleet.api.tenants.service import create_tenant
from facefleet.face.model import EMBEDDING_DIM
from tests.fixtures.gallery_learning import (
    Camera,
    b64,
    create_person,
    embedding_of,
    events_of,
    recognized,
    sighting,
)
from tests.fixtures.harness import Api, FakeClock, Tenant, make_settings
from tests.fixtures.live_server import LiveServer, live_server


async def strangers(api: Api, tenant: Tenant, **params: Any) -> dict[str, Any]:
    resp = await api.client.get("/v1/strangers", params=params, headers=tenant.headers(Role.viewer))
    assert resp.status_code == 200, resp.text
    page: dict[str, Any] = resp.json()
    return page


async def sighting_ids(api: Api, tenant: Tenant, **params: Any) -> list[int]:
    resp = await api.client.get("/v1/sightings", params=params, headers=tenant.headers(Role.viewer))
    assert resp.status_code == 200, resp.text
    return sorted(s["id"] for s in resp.json()["items"])


async def test_repeat_visitors_are_one_stranger_each(
    api: Api, fixtures_dir: Path, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    events = api.state.events.subscribe(tenant.id)
    camera = await Camera.lease(api, tenant)
    t = clock.now
    a1, a2, b1, a3, known, faceless = await camera.report(
        [
            sighting("a1", t - 300, "enroll/barack_obama.jpg"),  # a crop: embedded here
            sighting("a2", t - 200, "probe/barack_obama_2.jpg", crop=False, embedding=True),
            sighting("b1", t - 150, "enroll/rose_leslie.jpg", embedding=True),
            sighting("a3", t - 100, "probe/barack_obama_small.jpg"),
            sighting("k1", t - 90, "enroll/joe_biden.jpg", person_id=None, crop=False),
            sighting("n1", t - 80),  # neither crop nor embedding: nothing to cluster by
        ]
    )
    before = await strangers(api, tenant)
    assert (before["total"], before["pending"]) == (0, 4)

    assert await StrangerClusterer(api.state).run_once() == 4
    page = await strangers(api, tenant)
    assert page["pending"] == 0
    assert [s["sightings"] for s in page["items"]] == [3, 1]  # the latest seen first
    visitor, other = page["items"]
    assert await sighting_ids(api, tenant, stranger_id=visitor["id"]) == sorted([a1, a2, a3])
    assert await sighting_ids(api, tenant, stranger_id=other["id"]) == [b1]
    assert visitor["crop_url"] == f"/v1/sightings/{a3}/crop"
    assert visitor["first_seen"] < visitor["last_seen"]
    assert (await strangers(api, tenant, min_sightings=2))["total"] == 1
    listed = await api.client.get(
        "/v1/sightings", params={"known": False}, headers=tenant.headers(Role.viewer)
    )
    by_id = {s["id"]: s["stranger_id"] for s in listed.json()["items"]}
    assert by_id[a1] == visitor["id"] and by_id[known] is None and by_id[faceless] is None

    seen = await events_of(events, "stranger_seen", 4)
    assert [(e["sighting_id"], e["new"], e["sightings"]) for e in seen] == [
        (a1, True, 1),
        (a2, False, 2),
        (b1, True, 1),
        (a3, False, 3),
    ]
    # Incremental: the visitor coming back later joins the same stranger.
    [a4] = await camera.report(
        [sighting("a4", t - 10, "probe/barack_obama_2.jpg", crop=False, embedding=True)]
    )
    assert await StrangerClusterer(api.state).run_once() == 1
    again = await strangers(api, tenant)
    assert [(s["id"], s["sightings"]) for s in again["items"]] == [
        (visitor["id"], 4),
        (other["id"], 1),
    ]
    # Another tenant's visitor of the same face is that tenant's own stranger.
    elsewhere = await api.tenant()
    their_camera = await Camera.lease(api, elsewhere, "w2")
    await their_camera.report([sighting("x", t - 5, "probe/barack_obama_2.jpg", embedding=True)])
    await StrangerClusterer(api.state).run_once()
    assert (await strangers(api, elsewhere))["total"] == 1
    assert (await strangers(api, tenant))["total"] == 2
    assert a4 in await sighting_ids(api, tenant, stranger_id=visitor["id"])


async def test_promoting_a_stranger_moves_its_sightings(
    api: Api, fixtures_dir: Path, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    events = api.state.events.subscribe(tenant.id)
    camera = await Camera.lease(api, tenant)
    t = clock.now
    ids = await camera.report(
        [
            sighting("k1", t - 300, "enroll/kit_harington.jpg", frames=30),
            sighting("k2", t - 200, "probe/kit_harington_2.jpg", frames=10),
            sighting("k3", t - 100, "probe/kit_harington_2.jpg", crop=False, embedding=True),
            sighting("r1", t - 50, "enroll/rose_leslie.jpg"),
        ]
    )
    await StrangerClusterer(api.state).run_once()
    page = await strangers(api, tenant)
    kit_stranger = next(s for s in page["items"] if s["sightings"] == 3)["id"]
    rose_stranger = next(s for s in page["items"] if s["sightings"] == 1)["id"]
    assert await recognized(api, tenant, "probe/kit_harington_2.jpg") == [None]

    admin = tenant.headers()
    resp = await api.client.post(
        f"/v1/strangers/{kit_stranger}/promote", json={"name": "Kit", "enroll": 2}, headers=admin
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    kit = body["person"]["id"]
    assert (body["sightings_moved"], body["person"]["face_count"], body["skipped"]) == (3, 2, [])
    assert [f["source_name"] for f in body["faces"]] == [f"sighting {ids[0]}", f"sighting {ids[1]}"]
    assert await sighting_ids(api, tenant, person_id=kit) == sorted(ids[:3])
    assert await sighting_ids(api, tenant, stranger_id=kit_stranger) == []
    assert await recognized(api, tenant, "probe/kit_harington_2.jpg") == [kit]
    left = await strangers(api, tenant)
    assert [s["id"] for s in left["items"]] == [rose_stranger]
    link = await api.client.get(f"/v1/strangers/{kit_stranger}", headers=admin)
    assert link.json()["promoted_to_person_id"] == kit
    [promoted] = await events_of(events, "stranger_promoted", 1)
    assert promoted == {"stranger_id": kit_stranger, "person_id": kit, "sightings": 3}

    again = await api.client.post(
        f"/v1/strangers/{kit_stranger}/promote", json={"name": "Kit"}, headers=admin
    )
    assert again.status_code == 409
    for bad in ({}, {"name": "R", "person_id": kit}, {"person_id": kit, "external_ref": "x"}):
        refused = await api.client.post(
            f"/v1/strangers/{rose_stranger}/promote", json=bad, headers=admin
        )
        assert refused.status_code == 422, bad
    missing = await api.client.post(
        "/v1/strangers/999999/promote", json={"name": "x"}, headers=admin
    )
    assert missing.status_code == 404
    # Into an existing person: the sightings follow, no crop enrolled when asked for none.
    rose = await create_person(api, tenant, "Rose")
    into = await api.client.post(
        f"/v1/strangers/{rose_stranger}/promote",
        json={"person_id": rose, "enroll": 0},
        headers=admin,
    )
    assert into.status_code == 200 and into.json()["faces"] == []
    assert await sighting_ids(api, tenant, person_id=rose) == [ids[3]]
    audit = await api.client.get(
        "/v1/gallery/audit", params={"action": "stranger_promoted"}, headers=admin
    )
    assert [a["stranger_id"] for a in audit.json()["items"]] == [rose_stranger, kit_stranger]
    # Deleting the person takes the link of the stranger promoted into them.
    assert (await api.client.delete(f"/v1/people/{rose}", headers=admin)).status_code == 204
    assert (
        await api.client.get(f"/v1/strangers/{rose_stranger}", headers=admin)
    ).status_code == 404


async def test_a_sighting_labelled_while_it_is_clustered_is_left_alone(
    api: Api, fixtures_dir: Path, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    person = await create_person(api, tenant, "Rose")
    camera = await Camera.lease(api, tenant)
    [seen] = await camera.report([sighting("r1", clock.now - 60, "enroll/rose_leslie.jpg")])

    class Racing(StrangerClusterer):
        async def _embedding(self, item: PendingSighting) -> Any:
            # The operator labels the sighting between the clusterer's read and its write.
            resp = await api.client.post(
                f"/v1/sightings/{item.id}/assign",
                json={"person_id": person, "enroll": False},
                headers=tenant.headers(),
            )
            assert resp.status_code == 200
            return await super()._embedding(item)

    assert await Racing(api.state).run_once() == 1
    assert (await strangers(api, tenant))["total"] == 0
    assert await sighting_ids(api, tenant, person_id=person) == [seen]


async def test_sighting_embeddings_are_validated(
    api: Api, fixtures_dir: Path, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    camera = await Camera.lease(api, tenant)
    good = embedding_of("enroll/rose_leslie.jpg").astype("<f4")
    nan = good.copy()
    nan[3] = float("nan")
    path = f"/v1/workers/{camera.worker.worker_id}/sightings"
    for bad, why in (
        (b64(good.tobytes()[:-4]), "508 bytes"),
        (b64(nan.tobytes()), "finite"),
        ("@@" + b64(good.tobytes())[2:], "not base64"),
    ):
        body = {
            "camera_id": camera.id,
            "epoch": camera.epoch,
            "sightings": [sighting("t", clock.now - 9, embedding_b64=bad)],
        }
        resp = await api.client.post(path, json=body, headers=camera.worker.headers)
        assert resp.status_code == 422 and why in resp.text, (why, resp.text)
    # An embedding of another model is not compared with this gallery's: it is dropped.
    [foreign, own] = await camera.report(
        [
            sighting("f", clock.now - 8, embedding_b64=b64(good.tobytes()), embedding_model="x"),
            sighting("o", clock.now - 7, embedding_b64=b64(good.tobytes())),
        ]
    )
    async with api.state.sessions() as session:
        rows = await session.execute(select(Sighting.id, Sighting.embedding))
        stored = {sid: embedding for sid, embedding in rows}
    assert stored[foreign] is None and stored[own] is not None
    assert len(stored[own] or b"") == EMBEDDING_DIM * 4


# The clusterer as the lifespan runs it: on the leader, woken by the sightings it receives.


@pytest.fixture
def server(database_url: str, hot_settings: dict[str, Any], tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path, database_url, run_background=True, **hot_settings)
    with live_server(create_app(settings)) as running:
        yield running


async def test_the_leader_clusters_and_the_websocket_tells(
    server: LiveServer, http: httpx.AsyncClient, fixtures_dir: Path
) -> None:
    async def make() -> Tenant:
        async with server.state.sessions() as session:
            created = await create_tenant(session, f"t-{uuid.uuid4().hex[:10]}")
            await session.commit()
        return Tenant(created.id, created.name, created.keys)

    tenant = server.call(make())
    camera = await Camera.lease(Api(server.app, http, server.app.state.facefleet.settings), tenant)
    url = f"{server.ws_url}/v1/workers/ws/{tenant.id}"
    async with connect(url, additional_headers=tenant.headers(Role.viewer)) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
        now = asyncio.get_running_loop().time() + 1_800_000_000
        sightings = [
            sighting(f"t{i}", now + i, photo, crop=False, embedding=True)
            for i, photo in enumerate(
                ["probe/joe_biden_2.jpg", "enroll/joe_biden.jpg", "enroll/kit_harington.jpg"]
            )
        ]
        await camera.report(sightings)
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(15):
            while len(seen) < 3:
                message = json.loads(await ws.recv())
                if message.get("kind") == "stranger_seen":
                    seen.append(message["data"])
    assert [(e["new"], e["sightings"]) for e in seen] == [(True, 1), (False, 2), (True, 1)]
    assert seen[0]["stranger_id"] == seen[1]["stranger_id"] != seen[2]["stranger_id"]

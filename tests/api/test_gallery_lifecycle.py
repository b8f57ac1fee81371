"""The gallery's data lifecycle on the three backends: erasing a person (or a stranger) in
one call leaves no row, crop or embedding of them, checked in the database, and an audit row
without biometric data; the retention pruner removes what is older than the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from facefleet.api.security import Role
from facefleet.api.sightings.retention import RetentionPruner
from facefleet.api.storage.db.models import (
    FaceEmbedding,
    GalleryAudit,
    NegativeExample,
    Person,
    Sighting,
    Stranger,
)
from facefleet.api.strangers.clusterer import StrangerClusterer
from tests.fixtures.gallery_learning import (
    Camera,
    create_person,
    embedding_of,
    enroll_photo,
    recognized,
    sighting,
)
from tests.fixtures.harness import Api, FakeClock, Tenant

DAY = 86_400.0
# Below this distance an embedding is a photo of the same face (other people's are > 0.7).
SAME_FACE = 0.5


async def everything(api: Api) -> dict[str, list[Any]]:
    """Every row that can hold a face, straight from the database."""
    async with api.state.sessions() as session:
        out: dict[str, list[Any]] = {}
        for model in (Person, FaceEmbedding, NegativeExample, Sighting, Stranger, GalleryAudit):
            out[model.__tablename__] = list((await session.scalars(select(model))).all())
    return out


def embeddings_in(rows: dict[str, list[Any]]) -> list[tuple[str, int, np.ndarray[Any, Any]]]:
    found = []
    for table, column in (
        ("faces", "embedding"),
        ("negative_examples", "embedding"),
        ("sightings", "embedding"),
        ("strangers", "centroid"),
    ):
        for row in rows[table]:
            value = getattr(row, column)
            if value is not None:
                found.append((table, row.id, np.frombuffer(value, dtype="<f4")))
    return found


def near(vector: np.ndarray[Any, Any], faces: list[np.ndarray[Any, Any]]) -> bool:
    return any(float(np.linalg.norm(vector - face)) < SAME_FACE for face in faces)


async def test_erasing_a_person_leaves_nothing_of_them(
    api: Api, fixtures_dir: Path, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    admin = tenant.headers()
    rose = await create_person(api, tenant, "Rose Leslie")
    kit = await create_person(api, tenant, "Kit")
    await enroll_photo(api, tenant, rose, "enroll/rose_leslie.jpg")
    await enroll_photo(api, tenant, kit, "enroll/kit_harington.jpg")
    camera = await Camera.lease(api, tenant)
    t = clock.now
    labelled, worker_label, unknown, not_kit, kits = await camera.report(
        [
            sighting("r1", t - 500, "probe/rose_leslie_2.jpg", person_id=rose, embedding=True),
            sighting("r2", t - 400, "enroll/rose_leslie.jpg", person_id=rose),
            sighting("r3", t - 300, "probe/rose_leslie_2.jpg"),
            sighting("r4", t - 200, "enroll/rose_leslie.jpg", person_id=kit),
            sighting("k1", t - 100, "probe/kit_harington_2.jpg", person_id=kit),
        ]
    )
    # Her unknown sighting becomes a stranger, promoted into her (its crop enrolled)...
    await StrangerClusterer(api.state).run_once()
    [stranger] = (await api.client.get("/v1/strangers", headers=admin)).json()["items"]
    promoted = await api.client.post(
        f"/v1/strangers/{stranger['id']}/promote", json={"person_id": rose}, headers=admin
    )
    assert promoted.status_code == 200 and len(promoted.json()["faces"]) == 1
    # ...and a sighting of her that a worker took for Kit teaches Kit a negative example.
    taught = await api.client.post(f"/v1/sightings/{not_kit}/not-person", json={}, headers=admin)
    assert taught.status_code == 200
    assigned = await api.client.post(
        f"/v1/sightings/{not_kit}/assign", json={"person_id": rose}, headers=admin
    )
    assert assigned.status_code == 200

    before = await everything(api)
    hers = [s for s in before["sightings"] if s.person_id == rose]
    assert sorted(s.id for s in hers) == sorted([labelled, worker_label, unknown, not_kit])
    her_faces = [
        np.frombuffer(f.embedding, dtype="<f4") for f in before["faces"] if f.person_id == rose
    ]
    her_faces.append(embedding_of("probe/rose_leslie_2.jpg"))
    crops = {s.crop for s in hers if s.crop is not None}
    thumbnails = {f.thumbnail for f in before["faces"] if f.person_id == rose and f.thumbnail}
    # Her photo, the promoted stranger's crop and the assigned sighting's crop.
    assert len(her_faces) == 4 and len(thumbnails) == 3
    assert len(crops) == 2  # r1 and r3, r2 and r4 are crops of the same photos
    assert any(n.person_id == kit for n in before["negative_examples"])

    resp = await api.client.post(f"/v1/people/{rose}/erase", headers=admin)
    assert resp.status_code == 200, resp.text
    receipt = resp.json()
    assert {k: receipt[k] for k in ("faces", "negatives", "sightings", "crops", "strangers")} == {
        "faces": 3,
        "negatives": 1,
        "sightings": 4,
        "crops": 4,
        "strangers": 1,
    }

    after = await everything(api)
    assert [p.id for p in after["people"]] == [kit]
    assert all(f.person_id == kit for f in after["faces"])
    assert after["negative_examples"] == []
    assert [s.id for s in after["sightings"]] == [kits]
    assert after["strangers"] == []
    for table, row_id, vector in embeddings_in(after):
        assert not near(vector, her_faces), f"{table} {row_id} still holds her face"
    blobs = {s.crop for s in after["sightings"]} | {f.thumbnail for f in after["faces"]}
    assert not blobs & (crops | thumbnails)
    [audit] = [a for a in after["gallery_audit"] if a.action == "person_erased"]
    assert (audit.id, audit.person_id, audit.key_id) == (receipt["audit_id"], rose, audit.key_id)
    assert audit.key_id is not None
    assert all(isinstance(v, int) for v in audit.detail.values())
    assert "Rose" not in repr(audit.detail) and audit.stranger_id is None

    # She is a stranger to the gallery now; Kit is untouched.
    assert await recognized(api, tenant, "probe/rose_leslie_2.jpg") == [None]
    assert await recognized(api, tenant, "probe/kit_harington_2.jpg") == [kit]
    assert (await api.client.get(f"/v1/people/{rose}", headers=admin)).status_code == 404
    assert (await api.client.post(f"/v1/people/{rose}/erase", headers=admin)).status_code == 404
    viewer = await api.client.post(f"/v1/people/{kit}/erase", headers=tenant.headers(Role.viewer))
    assert viewer.status_code == 403
    listed = (await api.client.get("/v1/gallery/audit", headers=admin)).json()
    assert listed["items"][0]["action"] == "person_erased"


async def test_erasing_a_stranger_takes_its_sightings(
    api: Api, fixtures_dir: Path, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    camera = await Camera.lease(api, tenant)
    ids = await camera.report(
        [
            sighting("a", clock.now - 30, "enroll/joe_biden.jpg", embedding=True),
            sighting("b", clock.now - 20, "probe/joe_biden_2.jpg"),
        ]
    )
    await StrangerClusterer(api.state).run_once()
    [stranger] = (await api.client.get("/v1/strangers", headers=tenant.headers())).json()["items"]
    resp = await api.client.delete(f"/v1/strangers/{stranger['id']}", headers=tenant.headers())
    assert resp.status_code == 200, resp.text
    assert (resp.json()["sightings"], resp.json()["crops"]) == (2, 2)
    after = await everything(api)
    assert not [s for s in after["sightings"] if s.id in ids]
    assert after["strangers"] == []
    [audit] = after["gallery_audit"]
    assert (audit.action, audit.stranger_id, audit.detail["sightings"]) == (
        "stranger_erased",
        stranger["id"],
        2,
    )
    gone = await api.client.delete(f"/v1/strangers/{stranger['id']}", headers=tenant.headers())
    assert gone.status_code == 404


async def settings(api: Api, tenant: Tenant, **changes: Any) -> dict[str, Any]:
    resp = await api.client.patch("/v1/tenant/settings", json=changes, headers=tenant.headers())
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_the_retention_pruner_removes_what_is_older_than_the_setting(
    api: Api, fixtures_dir: Path, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    kept_tenant = await api.tenant()
    for bad in (
        {"sighting_retention_days": 0},
        {"crop_retention_days": -1},
        {"sighting_retention_days": 40_000},
        {"crop_retention_days": "week"},
    ):
        resp = await api.client.patch("/v1/tenant/settings", json=bad, headers=tenant.headers())
        assert resp.status_code == 422, bad
    body = await settings(api, tenant, sighting_retention_days=30, crop_retention_days=7)
    assert (body["sighting_retention_days"], body["crop_retention_days"]) == (30, 7)

    kit = await create_person(api, tenant, "Kit")
    camera = await Camera.lease(api, tenant)
    t = clock.now
    old, old_known, middle, recent = await camera.report(
        [
            sighting("old", t - 40 * DAY, "enroll/barack_obama.jpg", embedding=True),
            sighting("known", t - 35 * DAY, "enroll/kit_harington.jpg", person_id=kit),
            sighting("mid", t - 10 * DAY, "enroll/rose_leslie.jpg", embedding=True),
            sighting("new", t - 1 * DAY, "probe/rose_leslie_2.jpg", embedding=True),
        ]
    )
    enrolled = await api.client.post(
        f"/v1/sightings/{old_known}/assign", json={"person_id": kit}, headers=tenant.headers()
    )
    face = enrolled.json()["face"]["id"]
    other_camera = await Camera.lease(api, kept_tenant, "w2")
    [elsewhere] = await other_camera.report(
        [sighting("x", t - 400 * DAY, "enroll/joe_biden.jpg", embedding=True)]
    )
    await StrangerClusterer(api.state).run_once()
    assert (await api.client.get("/v1/strangers", headers=tenant.headers())).json()["total"] == 2

    pruned = await RetentionPruner(api.state).run_once()
    assert list(pruned) == [tenant.id]
    assert (pruned[tenant.id].sightings, pruned[tenant.id].crops) == (2, 3)
    assert pruned[tenant.id].strangers == 1

    rows = {s.id: s for s in (await everything(api))["sightings"]}
    assert sorted(rows) == sorted([middle, recent, elsewhere])
    assert old not in rows and old_known not in rows
    assert (rows[middle].crop, rows[middle].embedding) == (None, None)
    assert rows[recent].crop is not None and rows[recent].embedding is not None
    assert rows[elsewhere].crop is not None  # a tenant without retention keeps everything
    # The stranger of the pruned sighting went with it; the other keeps both sightings.
    page = (await api.client.get("/v1/strangers", headers=tenant.headers())).json()
    assert [s["sightings"] for s in page["items"]] == [2]
    # A face enrolled from a pruned sighting is the gallery's: it stays.
    faces = (await api.client.get(f"/v1/people/{kit}", headers=tenant.headers())).json()["faces"]
    assert [f["id"] for f in faces] == [face]
    async with api.state.sessions() as session:
        kept_face = await session.get_one(FaceEmbedding, face)
        assert kept_face.sighting_id is None
        audit = (await session.scalars(select(GalleryAudit))).all()
    assert [(a.action, a.tenant_id, a.detail["sightings"]) for a in audit] == [
        ("retention_pruned", tenant.id, 2)
    ]
    assert await RetentionPruner(api.state).run_once() == {}

    # Time passes: what was recent ages out too; with no setting, nothing goes.
    await settings(api, kept_tenant, sighting_retention_days=None)
    clock.advance(31 * DAY)
    await RetentionPruner(api.state).run_once()
    left = {s.id for s in (await everything(api))["sightings"]}
    assert left == {elsewhere}
    assert (await api.client.get("/v1/strangers", headers=tenant.headers())).json()["total"] == 0

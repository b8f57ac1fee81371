"""Teaching the gallery from sightings, on the real fixture photos and the three backends:
a sighting assigned to a person (its crop enrolled), "not this person" (a negative example),
faces moved and people merged, and the gallery workers load carrying the same rule."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facefleet.api.security import Role
from facefleet.face.gallery import from_wire
from facefleet.protocol.gallery import GalleryOut
from tests.fixtures.gallery_learning import (
    Camera,
    b64,
    create_person,
    embedding_of,
    enroll_photo,
    recognized,
    sighting,
)
from tests.fixtures.harness import Api, FakeClock


def blank_jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((112, 112, 3), 127, np.uint8))
    assert ok
    return data.tobytes()


async def test_enrolling_from_a_sighting_makes_the_next_probe_match(
    api: Api, fixtures_dir: Path, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    obama = await create_person(api, tenant, "Barack")
    await enroll_photo(api, tenant, obama, "enroll/barack_obama.jpg")
    camera = await Camera.lease(api, tenant)
    [seen] = await camera.report([sighting("t1", clock.now - 60, "enroll/kit_harington.jpg")])
    assert await recognized(api, tenant, "probe/kit_harington_2.jpg") == [None]

    kit = await create_person(api, tenant, "Kit")
    resp = await api.client.post(
        f"/v1/sightings/{seen}/assign", json={"person_id": kit}, headers=tenant.headers()
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["sighting"]["person_id"] == kit and body["sighting"]["known"] is True
    assert body["sighting"]["person_name"] == "Kit"
    assert body["face"]["person_id"] == kit
    assert body["face"]["source_name"] == f"sighting {seen}"
    # The next probe of that face matches the person the sighting was assigned to.
    assert await recognized(api, tenant, "probe/kit_harington_2.jpg") == [kit]
    listed = await api.client.get(
        "/v1/sightings", params={"person_id": kit}, headers=tenant.headers(Role.viewer)
    )
    assert [s["id"] for s in listed.json()["items"]] == [seen]
    # A later update of the track by the worker does not undo the operator's label.
    await camera.report([sighting("t1", clock.now - 60, frames=40)])
    again = await api.client.get(
        "/v1/sightings", params={"person_id": kit}, headers=tenant.headers(Role.viewer)
    )
    assert [(s["id"], s["frames"]) for s in again.json()["items"]] == [(seen, 40)]


async def test_not_this_person_stops_that_face_matching_them(
    api: Api, fixtures_dir: Path, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    obama = await create_person(api, tenant, "Barack")
    await enroll_photo(api, tenant, obama, "enroll/barack_obama.jpg")
    camera = await Camera.lease(api, tenant)
    [seen] = await camera.report(
        [sighting("t1", clock.now - 60, "probe/barack_obama_2.jpg", person_id=obama)]
    )
    assert await recognized(api, tenant, "probe/barack_obama_2.jpg") == [obama]

    resp = await api.client.post(
        f"/v1/sightings/{seen}/not-person", json={}, headers=tenant.headers()
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["sighting"]["person_id"] is None and body["sighting"]["known"] is False
    assert body["negative"]["person_id"] == obama and body["negative"]["sighting_id"] == seen
    # The same probe no longer matches him; a face far nearer his own photo still does.
    assert await recognized(api, tenant, "probe/barack_obama_2.jpg") == [None]
    assert await recognized(api, tenant, "probe/barack_obama_small.jpg") == [obama]
    detail = (await api.client.get(f"/v1/people/{obama}", headers=tenant.headers())).json()
    assert detail["negative_count"] == 1

    negatives = await api.client.get(f"/v1/people/{obama}/negatives", headers=tenant.headers())
    [negative] = negatives.json()
    removed = await api.client.delete(
        f"/v1/people/{obama}/negatives/{negative['id']}", headers=tenant.headers()
    )
    assert removed.status_code == 204
    assert await recognized(api, tenant, "probe/barack_obama_2.jpg") == [obama]


async def test_learning_refuses_what_it_cannot_learn_from(
    api: Api, fixtures_dir: Path, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    kit = await create_person(api, tenant, "Kit")
    camera = await Camera.lease(api, tenant)
    blank, bare, face = await camera.report(
        [
            sighting("blank", clock.now - 60, crop_jpeg_b64=b64(blank_jpeg())),
            sighting("bare", clock.now - 50),
            sighting("face", clock.now - 40, "enroll/kit_harington.jpg"),
        ]
    )
    admin = tenant.headers()

    async def post(path: str, body: dict[str, object]) -> tuple[int, str]:
        resp = await api.client.post(path, json=body, headers=admin)
        return resp.status_code, resp.json().get("detail", "")

    status, detail = await post(f"/v1/sightings/{blank}/assign", {"person_id": kit})
    assert status == 422 and "no face found" in detail
    status, detail = await post(f"/v1/sightings/{bare}/assign", {"person_id": kit})
    assert status == 422 and "no face crop" in detail
    status, detail = await post(f"/v1/sightings/{blank}/not-person", {"person_id": kit})
    assert status == 422 and "no face to learn from" in detail
    status, detail = await post(f"/v1/sightings/{face}/not-person", {})
    assert status == 422 and "not labelled" in detail
    assert (await post(f"/v1/sightings/{face}/assign", {"person_id": 999_999}))[0] == 404
    assert (await post("/v1/sightings/999999/assign", {"person_id": kit}))[0] == 404
    assert (await post(f"/v1/sightings/{face}/assign", {"person": kit}))[0] == 422
    viewer = await api.client.post(
        f"/v1/sightings/{face}/assign", json={"person_id": kit}, headers=tenant.headers(Role.viewer)
    )
    assert viewer.status_code == 403
    # Nothing was learnt: no face, no negative, no label.
    detail_body = (await api.client.get(f"/v1/people/{kit}", headers=admin)).json()
    assert (detail_body["face_count"], detail_body["negative_count"]) == (0, 0)
    # Labelling without enrolling needs no crop at all.
    status, _ = await post(f"/v1/sightings/{bare}/assign", {"person_id": kit, "enroll": False})
    assert status == 200
    other = await api.tenant()
    foreign = await api.client.post(
        f"/v1/sightings/{face}/assign", json={"person_id": kit}, headers=other.headers()
    )
    assert foreign.status_code == 404


async def test_moving_a_face_and_merging_people_relabel_their_sightings(
    api: Api, fixtures_dir: Path, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    admin, viewer = tenant.headers(), tenant.headers(Role.viewer)
    ann = await create_person(api, tenant, "Ann")
    bob = await create_person(api, tenant, "Bob")
    await enroll_photo(api, tenant, ann, "enroll/rose_leslie.jpg")
    camera = await Camera.lease(api, tenant)
    first, second, third = await camera.report(
        [
            sighting("t1", clock.now - 90, "probe/rose_leslie_2.jpg", person_id=ann),
            sighting("t2", clock.now - 80, person_id=ann),
            sighting("t3", clock.now - 70, "probe/kit_harington_2.jpg"),
        ]
    )
    assigned = await api.client.post(
        f"/v1/sightings/{third}/assign", json={"person_id": bob}, headers=admin
    )
    face = assigned.json()["face"]["id"]

    async def sightings_of(person: int) -> list[int]:
        resp = await api.client.get("/v1/sightings", params={"person_id": person}, headers=viewer)
        return sorted(s["id"] for s in resp.json()["items"])

    assert (await sightings_of(ann), await sightings_of(bob)) == ([first, second], [third])
    moved = await api.client.post(
        f"/v1/people/{bob}/faces/{face}/move", json={"person_id": ann}, headers=admin
    )
    assert moved.status_code == 200 and moved.json()["person_id"] == ann
    # The sighting the face was enrolled from follows it.
    assert (await sightings_of(ann), await sightings_of(bob)) == ([first, second, third], [])

    merged = await api.client.post(
        f"/v1/people/{ann}/merge", json={"into_person_id": bob}, headers=admin
    )
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert (body["sightings_moved"], body["faces_moved"]) == (3, 2)
    assert body["person"]["id"] == bob and body["person"]["face_count"] == 2
    assert await sightings_of(bob) == [first, second, third]
    assert (await api.client.get(f"/v1/people/{ann}", headers=admin)).status_code == 404
    names = (await api.client.get("/v1/sightings", headers=viewer)).json()["items"]
    assert {s["person_name"] for s in names} == {"Bob"}
    assert await recognized(api, tenant, "probe/rose_leslie_2.jpg") == [bob]
    itself = await api.client.post(
        f"/v1/people/{bob}/merge", json={"into_person_id": bob}, headers=admin
    )
    assert itself.status_code == 422
    # Assigning a sighting again is idempotent; to someone else, its face follows the label.
    again = await api.client.post(
        f"/v1/sightings/{third}/assign", json={"person_id": bob}, headers=admin
    )
    assert again.json()["face"]["id"] == face
    cy = await create_person(api, tenant, "Cy")
    moved_on = await api.client.post(
        f"/v1/sightings/{third}/assign", json={"person_id": cy}, headers=admin
    )
    assert moved_on.json()["face"]["person_id"] == cy
    faces = (await api.client.get(f"/v1/people/{bob}", headers=admin)).json()["faces"]
    assert [f["source_name"] for f in faces] == ["rose_leslie.jpg"]


async def test_workers_get_the_same_rule_as_recognize(
    api: Api, fixtures_dir: Path, clock: FakeClock
) -> None:
    tenant = await api.tenant()
    obama = await create_person(api, tenant, "Barack")
    biden = await create_person(api, tenant, "Joe")
    await enroll_photo(api, tenant, obama, "enroll/barack_obama.jpg")
    await enroll_photo(api, tenant, obama, "probe/barack_obama_small.jpg")
    await enroll_photo(api, tenant, biden, "enroll/joe_biden.jpg")
    camera = await Camera.lease(api, tenant)
    [seen] = await camera.report(
        [
            sighting(
                "t1", clock.now - 60, "probe/barack_obama_2.jpg", person_id=obama, embedding=True
            )
        ]
    )
    resp = await api.client.post(
        f"/v1/sightings/{seen}/not-person", json={}, headers=tenant.headers()
    )
    assert resp.status_code == 200
    wire = await api.client.get("/v1/gallery", headers=camera.worker.headers)
    data = GalleryOut.model_validate(wire.json())
    assert data.negative_person_ids == [obama]
    assert data.ratio == 0.8
    assert set(data.person_thresholds) == {str(obama)}  # the only one with two faces
    gallery = from_wire(data)
    for photo in ("probe/barack_obama_2.jpg", "probe/joe_biden_2.jpg", "enroll/rose_leslie.jpg"):
        [worker_match] = gallery.match(embedding_of(photo), data.threshold)
        expected = await recognized(api, tenant, photo)
        assert [None if worker_match.person_id is None else int(worker_match.person_id)] == (
            expected
        ), photo
    assert await recognized(api, tenant, "probe/joe_biden_2.jpg") == [biden]

    patched = await api.client.patch(
        "/v1/tenant/settings", json={"match_ratio": 0.9}, headers=tenant.headers()
    )
    assert patched.status_code == 200 and patched.json()["match_ratio"] == 0.9
    reloaded = (await api.client.get("/v1/gallery", headers=camera.worker.headers)).json()
    assert reloaded["ratio"] == 0.9 and reloaded["version"] == data.version + 1
    for bad in ({"match_ratio": 0}, {"match_ratio": 1.5}, {"match_threshold": None}):
        refused = await api.client.patch("/v1/tenant/settings", json=bad, headers=tenant.headers())
        assert refused.status_code == 422, bad

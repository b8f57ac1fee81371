"""Sightings through the API: fenced by the lease epoch, upserted by track, filtered."""

from __future__ import annotations

import base64

import cv2
import numpy as np

from facefleet.api.security import Role
from tests.fixtures.harness import Api, WorkerHandle, add_cameras


def sighting(track: str, person: int | None, t0: float, **extra: object) -> dict[str, object]:
    return {
        "track_id": track,
        "person_id": person,
        "first_seen": t0,
        "last_seen": t0 + 3,
        "best_distance": 0.4 if person else None,
        "frames": 12,
        **extra,
    }


async def test_sightings_are_fenced_by_the_epoch_and_listed(api: Api) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    person = (
        await api.client.post("/v1/people", json={"name": "Ada"}, headers=tenant.headers())
    ).json()["id"]
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    epoch = (await worker.request_camera()).json()["assignment"]["epoch"]
    _, jpeg = cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))
    crop = base64.b64encode(jpeg.tobytes()).decode()
    t0 = 1_800_000_100.0
    batch = {
        "camera_id": cam,
        "epoch": epoch,
        "sightings": [
            sighting("t1", person, t0, crop_jpeg_b64=crop),
            sighting("t2", None, t0 + 10),
        ],
    }
    path = "/v1/workers/w/sightings"
    resp = await api.client.post(path, json=batch, headers=worker.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 2
    # Posting a track again updates it instead of adding a sighting.
    update = {**batch, "sightings": [sighting("t1", person, t0, frames=30)]}
    assert (await api.client.post(path, json=update, headers=worker.headers)).status_code == 200

    stale = {**batch, "epoch": epoch - 1 if epoch > 1 else epoch + 5}
    refused = await api.client.post(path, json=stale, headers=worker.headers)
    assert refused.status_code == 409 and refused.json()["error"] == "StaleEpoch"

    viewer = tenant.headers(Role.viewer)
    listed = (await api.client.get("/v1/sightings", headers=viewer)).json()
    assert listed["total"] == 2
    known = (await api.client.get("/v1/sightings?known=true", headers=viewer)).json()["items"]
    assert [(s["person_name"], s["frames"], s["camera_name"]) for s in known] == [
        ("Ada", 30, "cam-000")
    ]
    unknown = (await api.client.get("/v1/sightings?known=false", headers=viewer)).json()
    assert [s["track_id"] for s in unknown["items"]] == ["t2"]
    window = await api.client.get(
        "/v1/sightings",
        params={"since": "2027-01-15T08:00:00Z", "person_id": person, "camera_id": cam},
        headers=viewer,
    )
    assert window.json()["total"] == 1
    crop_resp = await api.client.get(known[0]["crop_url"], headers=viewer)
    assert crop_resp.status_code == 200 and crop_resp.content == jpeg.tobytes()

    # After the lease moves on, the old holder's reports are refused.
    await worker.release(cam, epoch)
    other = WorkerHandle(api, tenant, "other")
    await other.register()
    await other.request_camera()
    late = await api.client.post(path, json=batch, headers=worker.headers)
    assert late.status_code == 409


async def test_bad_sighting_batches_are_422(api: Api) -> None:
    tenant = await api.tenant()
    (cam,) = await add_cameras(api, tenant, 1)
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    epoch = (await worker.request_camera()).json()["assignment"]["epoch"]
    path = "/v1/workers/w/sightings"
    for bad in [
        {"camera_id": cam, "epoch": epoch, "sightings": []},
        {"camera_id": cam, "epoch": epoch, "sightings": [sighting("t", None, 10.0, last_seen=5)]},
        {
            "camera_id": cam,
            "epoch": epoch,
            "sightings": [sighting("t", None, 10.0, crop_jpeg_b64="@@")],
        },
    ]:
        resp = await api.client.post(path, json=bad, headers=worker.headers)
        assert resp.status_code == 422, resp.text

"""The gallery through the API: enrollment of the fixture photos, recognition by hand,
refused uploads, versions, and the embeddings workers load."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest

from facefleet.api.security import Role
from tests.fixtures.harness import Api, Tenant, WorkerHandle, add_cameras

PEOPLE = [
    "alex_lacamoire",
    "barack_obama",
    "joe_biden",
    "kit_harington",
    "lin_manuel_miranda",
    "rose_leslie",
]


def enroll_file(fixtures_dir: Path, person: str) -> Path:
    return next((fixtures_dir / "faces" / "enroll").glob(f"{person}.*"))


async def enroll(api: Api, tenant: Tenant, fixtures_dir: Path, people: list[str]) -> dict[str, int]:
    ids = {}
    for person in people:
        created = await api.client.post(
            "/v1/people", json={"name": person}, headers=tenant.headers()
        )
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        photo = enroll_file(fixtures_dir, person)
        resp = await api.client.post(
            f"/v1/people/{pid}/faces",
            files={"files": (photo.name, photo.read_bytes(), "image/jpeg")},
            headers=tenant.headers(),
        )
        assert resp.status_code == 201, resp.text
        ids[person] = pid
    return ids


async def recognize(api: Api, tenant: Tenant, path: Path) -> list[dict[str, object]]:
    resp = await api.client.post(
        "/v1/recognize",
        files={"file": (path.name, path.read_bytes(), "image/jpeg")},
        headers=tenant.headers(Role.viewer),
    )
    assert resp.status_code == 200, resp.text
    faces: list[dict[str, object]] = resp.json()["faces"]
    return faces


async def test_every_probe_is_recognized_and_a_stranger_is_unknown(
    api: Api, fixtures_dir: Path
) -> None:
    tenant = await api.tenant()
    ids = await enroll(api, tenant, fixtures_dir, PEOPLE)
    probes = sorted((fixtures_dir / "faces" / "probe").iterdir())
    singles = [p for p in probes if p.name != "two_people.jpg"]
    assert len(singles) == 5
    for photo in singles:
        person = next(p for p in PEOPLE if photo.name.startswith(p))
        faces = await recognize(api, tenant, photo)
        assert len(faces) == 1, photo.name
        assert faces[0]["person_id"] == ids[person], (photo.name, faces)
        assert faces[0]["known"] is True
        assert isinstance(faces[0]["distance"], float) and faces[0]["distance"] < 0.6
    both = await recognize(api, tenant, fixtures_dir / "faces" / "probe" / "two_people.jpg")
    assert sorted(str(f["person_name"]) for f in both) == ["barack_obama", "joe_biden"]
    # Once Rose Leslie leaves the gallery, her photo is a stranger's.
    deleted = await api.client.delete(f"/v1/people/{ids['rose_leslie']}", headers=tenant.headers())
    assert deleted.status_code == 204
    stranger = await recognize(api, tenant, fixtures_dir / "faces" / "probe" / "rose_leslie_2.jpg")
    assert [(f["person_id"], f["known"]) for f in stranger] == [(None, False)]


async def test_gallery_versions_and_the_worker_gallery(api: Api, fixtures_dir: Path) -> None:
    tenant = await api.tenant()
    before = (await api.client.get("/v1/tenant/settings", headers=tenant.headers())).json()
    ids = await enroll(api, tenant, fixtures_dir, ["joe_biden", "kit_harington"])
    worker = WorkerHandle(api, tenant, "w")
    await worker.register()
    gallery = (await api.client.get("/v1/gallery", headers=worker.headers)).json()
    assert gallery["version"] == before["gallery_version"] + 4  # 2 people + 2 faces
    matrix = np.frombuffer(base64.b64decode(gallery["embeddings_b64"]), dtype="<f4")
    assert matrix.reshape(-1, gallery["dim"]).shape == (2, 128)
    assert sorted(gallery["person_ids"]) == sorted(ids.values())
    assert gallery["people"] == {str(v): k for k, v in ids.items()}
    beat = (await worker.heartbeat()).json()
    assert beat["gallery_version"] == gallery["version"]

    detail = await api.client.get(f"/v1/people/{ids['joe_biden']}", headers=tenant.headers())
    face = detail.json()["faces"][0]
    thumb = await api.client.get(face["thumbnail_url"], headers=tenant.headers(Role.viewer))
    assert thumb.headers["content-type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape[0] == 96
    removed = await api.client.delete(
        f"/v1/people/{ids['joe_biden']}/faces/{face['id']}", headers=tenant.headers()
    )
    assert removed.status_code == 204
    await api.client.patch(
        "/v1/tenant/settings", json={"match_threshold": 0.5}, headers=tenant.headers()
    )
    after = (await api.client.get("/v1/gallery", headers=tenant.headers())).json()
    assert after["version"] == gallery["version"] + 2 and after["threshold"] == 0.5
    assert len(after["person_ids"]) == 1
    # The camera's own threshold wins over the tenant's in assignments.
    (cam,) = await add_cameras(api, tenant, 1, match_threshold=0.45)
    assignment = (await worker.request_camera()).json()["assignment"]
    assert assignment["camera_id"] == cam and assignment["match_threshold"] == 0.45


def _jpeg(size: tuple[int, int] = (64, 64)) -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((*size, 3), 127, np.uint8))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("notes.txt", b"just some text", "not a JPEG or PNG"),
        ("cut.jpg", "TRUNCATED", "truncated"),
        ("empty.jpg", b"", "empty"),
        ("blank.jpg", "BLANK", "no face"),
        ("crowd.jpg", "TWO_PEOPLE", "2 faces"),
    ],
)
async def test_bad_uploads_are_refused_and_nothing_is_stored(
    api: Api, fixtures_dir: Path, name: str, data: bytes | str, expected: str
) -> None:
    tenant = await api.tenant()
    person = (
        await api.client.post("/v1/people", json={"name": "x"}, headers=tenant.headers())
    ).json()
    good = enroll_file(fixtures_dir, "kit_harington").read_bytes()
    payload = (
        {
            "TRUNCATED": good[: len(good) // 2],
            "BLANK": _jpeg(),
            "TWO_PEOPLE": (fixtures_dir / "faces" / "probe" / "two_people.jpg").read_bytes(),
        }.get(data, data)
        if isinstance(data, str)
        else data
    )
    version = (await api.client.get("/v1/tenant/settings", headers=tenant.headers())).json()
    resp = await api.client.post(
        f"/v1/people/{person['id']}/faces",
        # A good photo first: the batch is all-or-nothing.
        files=[
            ("files", ("good.jpg", good, "image/jpeg")),
            ("files", (name, payload, "application/octet-stream")),
        ],
        headers=tenant.headers(),
    )
    assert resp.status_code == 422, resp.text
    assert name in resp.json()["detail"] and expected in resp.json()["detail"], resp.text
    detail = (await api.client.get(f"/v1/people/{person['id']}", headers=tenant.headers())).json()
    assert detail["faces"] == []
    unchanged = (await api.client.get("/v1/tenant/settings", headers=tenant.headers())).json()
    assert unchanged["gallery_version"] == version["gallery_version"]


async def test_huge_dimensions_and_oversize_uploads(api: Api) -> None:
    tenant = await api.tenant()
    person = (
        await api.client.post("/v1/people", json={"name": "x"}, headers=tenant.headers())
    ).json()
    # A valid PNG header claiming 30000 x 30000 pixels: refused before decoding.
    import struct
    import zlib

    header = b"\x89PNG\r\n\x1a\n"
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    chunk = (
        struct.pack(">I", len(ihdr))
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )
    resp = await api.client.post(
        f"/v1/people/{person['id']}/faces",
        files={"files": ("huge.png", header + chunk + b"\x00" * 100, "image/png")},
        headers=tenant.headers(),
    )
    assert resp.status_code == 422 and "huge.png" in resp.json()["detail"], resp.text
    big = b"\xff\xd8\xff" + b"\x00" * (api.settings.max_upload_bytes + 10)
    resp = await api.client.post(
        "/v1/recognize", files={"file": ("big.jpg", big, "image/jpeg")}, headers=tenant.headers()
    )
    assert resp.status_code == 413 and resp.json()["error"] == "PayloadTooLarge"
    viewer = await api.client.post(
        "/v1/people", json={"name": "y"}, headers=tenant.headers(Role.viewer)
    )
    assert viewer.status_code == 403
    missing = await api.client.post(
        "/v1/people/999999/faces",
        files={"files": ("a.jpg", _jpeg(), "image/jpeg")},
        headers=tenant.headers(),
    )
    assert missing.status_code == 404 and missing.json()["error"] == "PersonNotFound"


async def test_the_demo_portrait_enrolls_as_one_face(api: Api) -> None:
    from facefleet.demo.faces import portrait_path

    tenant = await api.tenant()
    person = (
        await api.client.post("/v1/people", json={"name": "demo"}, headers=tenant.headers())
    ).json()
    photo = portrait_path()
    resp = await api.client.post(
        f"/v1/people/{person['id']}/faces",
        files={"files": (photo.name, photo.read_bytes(), "image/png")},
        headers=tenant.headers(),
    )
    assert resp.status_code == 201, resp.text
    assert len(resp.json()["faces"]) == 1

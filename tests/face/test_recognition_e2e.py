"""Recognition end to end: a real control plane and a real worker process, six people
enrolled through the API, the fixture video as a camera, sightings read back from the API."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.face_data import require_fixtures
from tests.fixtures.fleet import ControlPlane, WorkerProcess
from tests.fixtures.waiting import wait_for

PEOPLE = [
    "alex_lacamoire",
    "barack_obama",
    "joe_biden",
    "kit_harington",
    "lin_manuel_miranda",
    "rose_leslie",
]
IN_THE_CLIP = "lin_manuel_miranda"
NOT_IN_THE_CLIP = ["barack_obama", "joe_biden", "kit_harington", "rose_leslie"]
THRESHOLD = 0.6  # the tenant default


@pytest.fixture
def video() -> Path:
    path = require_fixtures() / "video" / "two_people_clip.mp4"
    assert path.is_file(), f"fixture video missing: {path}"
    return path


@pytest.fixture
def control(tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}")
    plane.start()
    yield plane
    plane.stop()


def enroll(admin: httpx.Client, enroll_dir: Path) -> dict[str, int]:
    ids = {}
    for person in PEOPLE:
        created = admin.post("/v1/people", json={"name": person})
        assert created.status_code == 201, created.text
        person_id: int = created.json()["id"]
        photo = next(enroll_dir.glob(f"{person}.*"))
        added = admin.post(
            f"/v1/people/{person_id}/faces",
            files={"files": (photo.name, photo.read_bytes(), "application/octet-stream")},
        )
        assert added.status_code == 201, added.text
        ids[person] = person_id
    return ids


def sightings(admin: httpx.Client, camera_id: int) -> list[dict[str, Any]]:
    resp = admin.get("/v1/sightings", params={"camera_id": camera_id, "limit": 1000})
    resp.raise_for_status()
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


def camera_metrics(admin: httpx.Client, worker_id: str, camera_id: int) -> dict[str, Any]:
    items = admin.get("/v1/workers", params={"limit": 1000}).json()["items"]
    metrics = next((w["metrics"] for w in items if w["worker_id"] == worker_id), None) or {}
    found: dict[str, Any] = metrics.get(f"camera_{camera_id}") or {}
    return found


def unix(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_the_worker_reports_who_the_video_shows(
    control: ControlPlane, video: Path, tmp_path: Path
) -> None:
    with control.admin() as admin:
        ids = enroll(admin, require_fixtures() / "faces" / "enroll")
        started = time.time()
        created = admin.post(
            "/v1/cameras",
            json={"name": "stage", "source_url": f"file://{video}", "target_fps": 10},
        )
        assert created.status_code == 201, created.text
        camera_id: int = created.json()["id"]
        worker = WorkerProcess("recognizer", control, tmp_path).start()
        try:

            def lin_twice() -> list[dict[str, Any]] | None:
                # The clip loops: one sighting per pass, so two mean the tracks end and restart.
                found = [
                    s for s in sightings(admin, camera_id) if s["person_id"] == ids[IN_THE_CLIP]
                ]
                return found if len(found) >= 2 else None

            wait_for(lin_twice, 120, "two sightings of Lin-Manuel Miranda", interval=1.0)

            def many_faces() -> dict[str, Any] | None:
                m = camera_metrics(admin, "recognizer", camera_id)
                return m if int(m.get("faces_detected", 0)) >= 20 else None

            metrics = wait_for(many_faces, 30, "twenty faces detected", interval=0.5)
            seen = sightings(admin, camera_id)
            gallery_version = admin.get("/v1/gallery").json()["version"]
            worker.signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        finally:
            worker.stop()
        finished = time.time()
        after_stop = sightings(admin, camera_id)

    log = worker.log()
    assert "Traceback" not in log, log[-3000:]
    assert "gallery version" in log
    lin = [s for s in seen if s["person_id"] == ids[IN_THE_CLIP]]
    unknown = [s for s in seen if s["person_id"] is None]
    faces = int(metrics["faces_detected"])
    print(
        f"\nrecognition: {len(seen)} sightings ({len(lin)} Lin-Manuel Miranda, "
        f"{len(unknown)} unknown) from {faces} faces in {metrics['frames_processed']} frames; "
        f"{metrics['detect_ms']} ms per frame; {len(after_stop)} sightings after the stop"
    )
    for s in lin:
        assert s["person_name"] == IN_THE_CLIP and s["known"] is True
        first, last = unix(s["first_seen"]), unix(s["last_seen"])
        assert started - 1 <= first <= last <= finished + 1, s
        assert s["frames"] >= 2, s
        assert 0 <= s["best_distance"] < THRESHOLD, s
    # Each pass shows him for half a second in the opening wide shot (a small face), then
    # for seconds in the close-ups: those sightings last seconds, not a frame.
    longest = max(lin, key=lambda s: unix(s["last_seen"]) - unix(s["first_seen"]))
    assert unix(longest["last_seen"]) - unix(longest["first_seen"]) >= 1.0, longest
    assert longest["frames"] >= 5, longest
    assert (metrics["gallery_size"], metrics["gallery_version"]) == (6, gallery_version)
    # One sighting per track, not per frame: far fewer than the faces detected.
    assert len(seen) * 5 <= faces, (len(seen), faces)
    absent = {ids[p] for p in NOT_IN_THE_CLIP}
    assert not [s for s in after_stop if s["person_id"] in absent], after_stop
    # A clean stop reports the tracks still open; none is lost or duplicated.
    assert len(after_stop) >= len(seen)
    assert len({(s["epoch"], s["track_id"]) for s in after_stop}) == len(after_stop)

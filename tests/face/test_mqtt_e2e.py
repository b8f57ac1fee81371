"""A real worker process on the fixture video, a real control plane process and the
machine's Mosquitto: the worker's sighting of the person in the clip reaches the sightings
topic with the documented payload, and the camera's retained last person is a sighting the
topic carried."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish as paho_publish
import pytest

from tests.fixtures.face_data import require_fixtures
from tests.fixtures.fleet import ControlPlane, WorkerProcess
from tests.fixtures.mqtt import MqttRecorder, Received, retained, shared_broker_url, unique_prefix
from tests.fixtures.waiting import wait_for

IN_THE_CLIP = "lin_manuel_miranda"
NOT_IN_THE_CLIP = "barack_obama"


@pytest.fixture
def broker() -> Iterator[tuple[int, str]]:
    url = shared_broker_url()
    port = int(url.rsplit(":", 1)[1])
    prefix = unique_prefix()
    recorder = MqttRecorder(port, [f"{prefix}/#", f"{prefix}-ha/#"])
    yield port, prefix
    topics = {m.topic for m in recorder.messages}
    recorder.close()
    if topics:  # leave nothing retained on the shared broker
        paho_publish.multiple([(t, b"", 1, True) for t in topics], hostname="127.0.0.1", port=port)


def enroll(admin: httpx.Client, name: str) -> int:
    created = admin.post("/v1/people", json={"name": name})
    assert created.status_code == 201, created.text
    person_id: int = created.json()["id"]
    photo = next((require_fixtures() / "faces" / "enroll").glob(f"{name}.*"))
    added = admin.post(
        f"/v1/people/{person_id}/faces",
        files={"files": (photo.name, photo.read_bytes(), "application/octet-stream")},
    )
    assert added.status_code == 201, added.text
    return person_id


def test_a_workers_sighting_reaches_the_sightings_topic(
    broker: tuple[int, str], tmp_path: Path
) -> None:
    port, prefix = broker
    video = require_fixtures() / "video" / "two_people_clip.mp4"
    assert video.is_file(), video
    recorder = MqttRecorder(port, [f"{prefix}/#"])
    control = ControlPlane(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}",
        env={
            "FACEFLEET_MQTT_URL": f"mqtt://127.0.0.1:{port}",
            "FACEFLEET_MQTT_TOPIC_PREFIX": prefix,
            "FACEFLEET_MQTT_DISCOVERY_PREFIX": f"{prefix}-ha",
            "FACEFLEET_PUBLIC_URL": "http://faces.local:8000",
        },
    )
    control.start()
    worker: WorkerProcess | None = None
    try:
        with control.admin() as admin:
            lin = enroll(admin, IN_THE_CLIP)
            enroll(admin, NOT_IN_THE_CLIP)
            created = admin.post(
                "/v1/cameras",
                json={"name": "stage", "source_url": f"file://{video}", "target_fps": 10},
            )
            assert created.status_code == 201, created.text
            camera_id: int = created.json()["id"]
            started = time.time()
            worker = WorkerProcess("recognizer", control, tmp_path).start()
            topic = f"{prefix}/default/sightings"

            def lin_seen(r: MqttRecorder) -> list[Received]:
                return [m for m in r.on(topic) if m.json()["person_id"] == lin]

            (message, *_) = recorder.wait_for(lin_seen, 90, "a sighting of Lin-Manuel Miranda")
            body: dict[str, Any] = message.json()
            assert message.qos == 1 and not message.retain
            assert body["person_name"] == IN_THE_CLIP and body["known"] is True
            assert body["camera_id"] == camera_id and body["camera_name"] == "stage"
            assert body["worker_id"] == "recognizer" and body["tenant"] == "default"
            assert 0 <= body["best_distance"] < 0.6
            assert body["late"] is False and body["event_id"]
            for field in ("first_seen", "last_seen", "occurred_at"):
                assert started - 1 <= _unix(body[field]) <= time.time() + 1, (field, body)
            listed = admin.get("/v1/sightings", params={"camera_id": camera_id}).json()["items"]
            stored = next(s for s in listed if s["id"] == body["id"])
            assert stored["person_name"] == IN_THE_CLIP
            if stored["crop_url"]:
                assert body["crop_url"] == f"http://faces.local:8000{stored['crop_url']}"
            assert not [m for m in recorder.on(topic) if m.json()["person_name"] == NOT_IN_THE_CLIP]

            def camera_holds_a_sighting() -> bool:
                # The clip shows someone not enrolled too: the last person may be unknown.
                held = retained(port, f"{prefix}/default/cameras/{camera_id}/person")
                reported = {m.json()["id"] for m in recorder.on(topic)}
                return held is not None and held.json()["sighting_id"] in reported

            wait_for(camera_holds_a_sighting, 30, "the camera's retained last person")
            status = retained(port, f"{prefix}/default/workers/recognizer/status")
            assert status is not None and status.json()["status"] == "online"
    finally:
        if worker is not None:
            worker.stop()
        recorder.close()
        control.stop()
    assert "Traceback" not in control.log(), control.log()[-3000:]


def _unix(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()

"""The SDK's gallery and sightings calls, against a scripted server."""

from __future__ import annotations

import pytest

from facefleet.worker.worker_client import (
    Assignment,
    HeartbeatResult,
    Sighting,
    StaleEpoch,
)
from tests.fixtures.scripted_server import HEARTBEAT, REGISTERED, scripted

GALLERY = {
    "version": 4,
    "model": "dlib_resnet_v1",
    "threshold": 0.55,
    "dim": 128,
    "person_ids": [1, 1, 2],
    "people": {"1": "Lin", "2": "Obama"},
    "embeddings_b64": "AAAA",
}
ASSIGNMENT = {
    "camera_id": 3,
    "name": "door",
    "source_url": "rtsp://u:p@cam/1",
    "target_fps": 5.0,
    "epoch": 2,
    "lease_ttl": 6.0,
}


def sighting(track_id: str, person_id: int | None) -> Sighting:
    return Sighting(
        track_id=track_id,
        person_id=person_id,
        first_seen=1.5,
        last_seen=2.5,
        best_distance=0.41 if person_id is not None else None,
        frames=3,
        crop_jpeg_b64="/9j/" if person_id is not None else None,
    )


async def test_get_gallery_sends_the_session_and_parses_the_answer() -> None:
    async with scripted((200, REGISTERED, {}), (200, GALLERY, {})) as (script, make):
        client = make()
        await client.register()
        gallery = await client.get_gallery()
        assert (gallery.version, gallery.threshold, gallery.person_ids) == (4, 0.55, [1, 1, 2])
        assert gallery.people == {"1": "Lin", "2": "Obama"}
        assert "AAAA" not in repr(gallery)
        seen = script.seen[1]
        assert (seen.method, seen.path) == ("GET", "/v1/gallery")
        assert seen.headers["x-worker-session"] == "tok-1"


async def test_report_sightings_posts_camera_epoch_and_sightings() -> None:
    accepted = {"accepted": 2, "ids": [10, 11]}
    async with scripted((200, REGISTERED, {}), (200, accepted, {})) as (script, make):
        client = make()
        await client.register()
        result = await client.report_sightings(3, 2, [sighting("a-1", 1), sighting("a-2", None)])
        assert (result.accepted, result.ids) == (2, [10, 11])
        seen = script.seen[1]
        assert (seen.method, seen.path) == ("POST", "/v1/workers/w1/sightings")
        assert seen.body == {
            "camera_id": 3,
            "epoch": 2,
            "sightings": [
                {
                    "track_id": "a-1",
                    "person_id": 1,
                    "first_seen": 1.5,
                    "last_seen": 2.5,
                    "best_distance": 0.41,
                    "frames": 3,
                    "crop_jpeg_b64": "/9j/",
                },
                {
                    "track_id": "a-2",
                    "person_id": None,
                    "first_seen": 1.5,
                    "last_seen": 2.5,
                    "best_distance": None,
                    "frames": 3,
                    "crop_jpeg_b64": None,
                },
            ],
        }


async def test_a_stale_epoch_raises_stale_epoch() -> None:
    stale = {"error": "StaleEpoch", "detail": "stop processing it", "camera_id": 3}
    async with scripted((200, REGISTERED, {}), (409, stale, {})) as (script, make):
        client = make()
        await client.register()
        with pytest.raises(StaleEpoch) as caught:
            await client.report_sightings(3, 1, [sighting("a-1", 1)])
        assert caught.value.status == 409 and caught.value.body["camera_id"] == 3
        assert len(script.seen) == 2  # not retried


def test_new_fields_are_read_and_optional() -> None:
    assert HeartbeatResult.model_validate(HEARTBEAT).gallery_version is None
    assert HeartbeatResult.model_validate({**HEARTBEAT, "gallery_version": 5}).gallery_version == 5
    assert Assignment.model_validate(ASSIGNMENT).match_threshold is None
    with_threshold = {**ASSIGNMENT, "match_threshold": 0.5}
    assert Assignment.model_validate(with_threshold).match_threshold == 0.5


def test_track_ids_are_limited_to_64_characters() -> None:
    with pytest.raises(ValueError):
        sighting("x" * 65, 1)

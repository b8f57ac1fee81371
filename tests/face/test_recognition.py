"""End to end on the real fixture photos: enroll, then recognize or reject each probe."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from facefleet.face.engine import FaceEngine
from facefleet.face.gallery import Gallery

from .conftest import PhotoLoader

ENROLL_PHOTOS = {
    "alex_lacamoire": "enroll/alex_lacamoire.png",
    "barack_obama": "enroll/barack_obama.jpg",
    "joe_biden": "enroll/joe_biden.jpg",
    "kit_harington": "enroll/kit_harington.jpg",
    "lin_manuel_miranda": "enroll/lin_manuel_miranda.png",
    "rose_leslie": "enroll/rose_leslie.jpg",
}
SINGLE_FACE_PROBES = [
    ("probe/barack_obama_2.jpg", "barack_obama"),
    ("probe/barack_obama_small.jpg", "barack_obama"),
    ("probe/joe_biden_2.jpg", "joe_biden"),
    ("probe/kit_harington_2.jpg", "kit_harington"),
    ("probe/rose_leslie_2.jpg", "rose_leslie"),
]
THRESHOLD = 0.6

FaceEmbeddings = Callable[[str], list[npt.NDArray[np.float32]]]


@pytest.fixture(scope="module")
def embeddings_of(engine: FaceEngine, load_photo: PhotoLoader) -> FaceEmbeddings:
    """Embeddings of the faces in a fixture photo, each photo analysed once."""

    @functools.cache
    def analyze(photo: str) -> list[npt.NDArray[np.float32]]:
        return [face.embedding for face in engine.analyze(load_photo(photo))]

    return analyze


def build_gallery(embeddings_of: FaceEmbeddings, people: list[str]) -> Gallery:
    enrolled = []
    for person in people:
        faces = embeddings_of(ENROLL_PHOTOS[person])
        assert len(faces) == 1, f"{person}: expected one face, found {len(faces)}"
        enrolled.append(faces[0])
    return Gallery(enrolled, people)


@pytest.fixture(scope="module")
def full_gallery(embeddings_of: FaceEmbeddings) -> Gallery:
    return build_gallery(embeddings_of, list(ENROLL_PHOTOS))


def test_every_person_enrolls_with_exactly_one_face(full_gallery: Gallery) -> None:
    assert sorted(full_gallery.person_ids) == sorted(ENROLL_PHOTOS)


@pytest.mark.parametrize(("photo", "person"), SINGLE_FACE_PROBES)
def test_probe_photo_matches_its_person(
    embeddings_of: FaceEmbeddings, full_gallery: Gallery, photo: str, person: str
) -> None:
    faces = embeddings_of(photo)
    assert len(faces) == 1
    [match] = full_gallery.match(faces[0], THRESHOLD)
    assert match.person_id == person
    assert match.distance < THRESHOLD


def test_both_people_are_found_in_one_frame(
    embeddings_of: FaceEmbeddings, full_gallery: Gallery
) -> None:
    faces = embeddings_of("probe/two_people.jpg")
    assert len(faces) == 2
    matches = full_gallery.match(faces, THRESHOLD)
    assert sorted(str(m.person_id) for m in matches) == ["barack_obama", "joe_biden"]
    assert all(m.distance < THRESHOLD for m in matches)


@pytest.mark.parametrize("left_out", list(ENROLL_PHOTOS))
def test_person_not_enrolled_comes_back_unknown(
    embeddings_of: FaceEmbeddings, left_out: str
) -> None:
    gallery = build_gallery(embeddings_of, [p for p in ENROLL_PHOTOS if p != left_out])
    photos = [ENROLL_PHOTOS[left_out]] + [p for p, who in SINGLE_FACE_PROBES if who == left_out]
    for photo in photos:
        faces = embeddings_of(photo)
        assert len(faces) == 1
        [match] = gallery.match(faces[0], THRESHOLD)
        assert match.person_id is None, f"{photo} matched {match.person_id}"
        assert match.distance > THRESHOLD


def test_cnn_detector_finds_the_small_face(load_photo: PhotoLoader, full_gallery: Gallery) -> None:
    engine = FaceEngine(detector="cnn")
    faces = engine.analyze(load_photo("probe/barack_obama_small.jpg"))
    assert len(faces) == 1
    assert full_gallery.match(faces[0].embedding, THRESHOLD)[0].person_id == "barack_obama"

"""The matching rule against a float64 brute-force reference, and its edge cases: the
ratio test, per-person thresholds, negative examples and the wire model."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from facefleet.face.gallery import (
    DEFAULT_MATCH_RATIO,
    EMBEDDING_DIM,
    PERSON_THRESHOLD_FLOOR,
    PERSON_THRESHOLD_SLACK,
    Gallery,
    Match,
    encode_matrix,
    from_wire,
    person_thresholds,
)
from facefleet.protocol.gallery import GalleryOut

PEOPLE = ["ann", "bob", "cyd", "dee", "eve"]
# Element range of real dlib embeddings, whose norms are around 1 to 1.5.
elements = st.floats(-0.5, 0.5, width=32, allow_nan=False, allow_infinity=False)


def embeddings(max_rows: int) -> st.SearchStrategy[npt.NDArray[np.float32]]:
    return arrays(
        np.float32,
        st.tuples(st.integers(0, max_rows), st.just(EMBEDDING_DIM)),
        elements=elements,
    )


def unit_vector(index: int, length: float = 1.0) -> npt.NDArray[np.float32]:
    vector = np.zeros(EMBEDDING_DIM, dtype=np.float32)
    vector[index] = length
    return vector


def reference_match(
    enrolled: npt.NDArray[np.float64],
    ids: list[str],
    probe: npt.NDArray[np.float64],
    threshold: float,
    ratio: float,
    thresholds: dict[str, float],
    negatives: npt.NDArray[np.float64],
    negative_ids: list[str],
    tolerance: float,
) -> tuple[str | None, float] | None:
    """The rule in float64: (person or None, squared distance to the nearest face), or None
    when the probe lies within rounding of a boundary, where either answer is right."""
    squared = ((enrolled - probe) ** 2).sum(axis=1)
    nearest: dict[str, float] = {}
    for value, who in zip(squared.tolist(), ids, strict=True):
        nearest[who] = min(nearest.get(who, math.inf), value)
    ranked = sorted(nearest.items(), key=lambda item: item[1])
    person, best = ranked[0]
    if len(ranked) > 1 and ranked[1][1] - best <= 2 * tolerance:
        return None  # two people tie for nearest
    limit = min(threshold, thresholds.get(person, math.inf)) ** 2
    if abs(best - limit) <= tolerance:
        return None
    if best > limit:
        return None, best
    rivals = [value for who, value in ranked[1:]] if ratio < 1.0 else []
    rivals += [
        float(((row - probe) ** 2).sum())
        for row, who in zip(negatives, negative_ids, strict=True)
        if who == person
    ]
    rival = min(rivals, default=math.inf)
    if abs(best - ratio**2 * rival) <= tolerance * (1 + ratio**2):
        return None
    return (person if best <= ratio**2 * rival else None), best


@settings(max_examples=300, deadline=None)
@given(
    enrolled=embeddings(40),
    data=st.data(),
    probes=embeddings(12),  # 8 probes or more take the matrix-product path
    threshold=st.floats(0.0, 4.0),
    ratio=st.floats(0.05, 1.0),
)
def test_match_agrees_with_brute_force(
    enrolled: npt.NDArray[np.float32],
    data: st.DataObject,
    probes: npt.NDArray[np.float32],
    threshold: float,
    ratio: float,
) -> None:
    # Few people for many rows, so people have several faces.
    ids = data.draw(
        st.lists(st.sampled_from(PEOPLE), min_size=len(enrolled), max_size=len(enrolled))
    )
    thresholds = data.draw(st.dictionaries(st.sampled_from(PEOPLE), st.floats(0.0, 4.0)))
    negatives = data.draw(embeddings(6))
    negative_ids = data.draw(
        st.lists(st.sampled_from(PEOPLE), min_size=len(negatives), max_size=len(negatives))
    )
    # Probes near enrolled faces too, so that some of them match.
    if len(enrolled):
        noise = data.draw(
            arrays(np.float32, probes.shape, elements=st.floats(-1 / 64, 1 / 64, width=32))
        )
        probes = probes.copy()
        probes[::2] = enrolled[np.arange(len(probes))[::2] % len(enrolled)] + noise[::2]
    gallery = Gallery(
        enrolled,
        ids,
        ratio=ratio,
        thresholds=thresholds,
        negatives=negatives,
        negative_ids=negative_ids,
    )
    matches = gallery.match(probes, threshold)
    assert len(matches) == len(probes)

    wide = enrolled.astype(np.float64)
    for probe, match in zip(probes.astype(np.float64), matches, strict=True):
        if not len(enrolled):
            assert match == Match(None, math.inf)
            continue
        # float32 rounding of |g|^2 + |p|^2 - 2 g.p, bounded by the magnitudes involved.
        norms = [probe @ probe, (wide**2).sum(axis=1).max()]
        if len(negatives):
            norms.append((negatives.astype(np.float64) ** 2).sum(axis=1).max())
        tolerance = 1e-5 * (norms[0] + max(norms[1:])) + 1e-9
        expected = reference_match(
            wide,
            ids,
            probe,
            threshold,
            ratio,
            thresholds,
            negatives.astype(np.float64),
            negative_ids,
            tolerance,
        )
        assert abs(match.distance**2 - ((wide - probe) ** 2).sum(axis=1).min()) <= tolerance
        if expected is not None:
            assert match.person_id == expected[0]


def test_empty_gallery_matches_nobody() -> None:
    for gallery in (Gallery.empty(), Gallery([], [])):
        assert len(gallery) == 0
        assert gallery.match(unit_vector(0)) == [Match(None, math.inf)]
        assert gallery.match(np.zeros((9, EMBEDDING_DIM))) == [Match(None, math.inf)] * 9
        assert gallery.match(np.zeros((0, EMBEDDING_DIM))) == []


def test_threshold_is_inclusive() -> None:
    # |a|^2 + |b|^2 - 2 a.b = 0.25 exactly in float32, so the distance is exactly 0.5.
    gallery = Gallery([unit_vector(0, 0.0)], ["ann"])
    probe = unit_vector(0, 0.5)
    assert gallery.match(probe, 0.5) == [Match("ann", 0.5)]
    assert gallery.match(probe, math.nextafter(0.5, 0.0)) == [Match(None, 0.5)]


def test_zero_threshold_matches_only_an_identical_face() -> None:
    gallery = Gallery([unit_vector(1), unit_vector(2)], ["ann", "bob"])
    assert gallery.match(unit_vector(2), 0.0) == [Match("bob", 0.0)]
    [far] = gallery.match(unit_vector(3), 0.0)
    assert far.person_id is None
    assert far.distance == pytest.approx(math.sqrt(2))


def test_nearest_face_decides_between_people_with_several_faces() -> None:
    gallery = Gallery(
        [unit_vector(0), unit_vector(1), unit_vector(2), unit_vector(3)],
        ["ann", "bob", "ann", "bob"],
    )
    probe = unit_vector(2) + unit_vector(3, 0.1)
    [match] = gallery.match(probe, 0.6)
    assert match.person_id == "ann"
    assert match.distance == pytest.approx(0.1)


def test_one_probe_and_many_probes_agree() -> None:
    rng = np.random.default_rng(7)
    enrolled = rng.normal(0, 0.1, (500, EMBEDDING_DIM)).astype(np.float32)
    gallery = Gallery(enrolled, [f"p{i}" for i in range(500)])
    probes = enrolled[:20] + rng.normal(0, 0.01, (20, EMBEDDING_DIM)).astype(np.float32)
    together = gallery.match(probes)
    one_by_one = [gallery.match(probe)[0] for probe in probes]
    assert [m.person_id for m in together] == [m.person_id for m in one_by_one]
    assert [m.person_id for m in together] == [f"p{i}" for i in range(20)]
    for a, b in zip(together, one_by_one, strict=True):
        assert a.distance == pytest.approx(b.distance, abs=1e-5)


def test_gallery_keeps_its_own_read_only_copy() -> None:
    enrolled = np.stack([unit_vector(0), unit_vector(1)])
    gallery = Gallery(enrolled, ["ann", "bob"])
    enrolled[0] = unit_vector(1)
    assert gallery.match(unit_vector(0), 0.1)[0].person_id == "ann"
    assert gallery.embeddings.dtype == np.float32
    assert gallery.embeddings.flags.c_contiguous
    with pytest.raises(ValueError):
        gallery.embeddings[0, 0] = 1.0


@pytest.mark.parametrize(
    ("enrolled", "ids"),
    [
        (np.zeros((2, 64)), ["ann", "bob"]),
        (np.zeros((2, EMBEDDING_DIM)), ["ann"]),
        (np.full((1, EMBEDDING_DIM), np.nan), ["ann"]),
        (np.zeros(EMBEDDING_DIM), ["ann"]),
    ],
    ids=["wrong-width", "ids-mismatch", "nan", "one-dimensional"],
)
def test_bad_enrollment_is_refused(enrolled: npt.NDArray[np.float64], ids: list[str]) -> None:
    with pytest.raises(ValueError):
        Gallery(enrolled, ids)


# The non-finite probe is caught after the product, which numpy may warn about first.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize(
    "probe",
    [
        np.zeros(64),
        np.zeros((2, 3, EMBEDDING_DIM)),
        np.full(EMBEDDING_DIM, np.inf),
        np.vstack([np.zeros((8, EMBEDDING_DIM)), np.full((1, EMBEDDING_DIM), np.nan)]),
    ],
    ids=["wrong-width", "three-dimensional", "infinite", "nan-in-a-batch"],
)
def test_bad_probes_are_refused(probe: npt.NDArray[np.float64]) -> None:
    with pytest.raises(ValueError):
        Gallery([unit_vector(0)], ["ann"]).match(probe)


@pytest.mark.parametrize("threshold", [-0.1, math.nan])
def test_bad_threshold_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        Gallery([unit_vector(0)], ["ann"]).match(unit_vector(0), threshold)


def test_a_face_between_two_people_is_unknown() -> None:
    ann, bob = unit_vector(0, 0.0), unit_vector(0, 1.0)
    gallery = Gallery([ann, bob], ["ann", "bob"])
    # 0.45 from ann, 0.55 from bob: within the threshold of both, nearer to neither by 20%.
    [between] = gallery.match(unit_vector(0, 0.45), 0.6)
    assert between.person_id is None and between.distance == pytest.approx(0.45)
    [near_ann] = gallery.match(unit_vector(0, 0.2), 0.6)
    assert near_ann.person_id == "ann" and near_ann.distance == pytest.approx(0.2)
    # Without the margin (ratio 1), the nearest within the threshold wins, as before.
    [plain] = Gallery([ann, bob], ["ann", "bob"], ratio=1.0).match(unit_vector(0, 0.45))
    assert plain.person_id == "ann"


def test_the_second_nearest_face_of_the_same_person_is_no_competitor() -> None:
    gallery = Gallery([unit_vector(0, 0.0), unit_vector(0, 0.1)], ["ann", "ann"])
    assert gallery.match(unit_vector(0, 0.05), 0.6)[0].person_id == "ann"


def test_a_negative_example_vetoes_its_person_only() -> None:
    ann, bob = unit_vector(0), unit_vector(1)
    look_alike = unit_vector(0, 0.6) + unit_vector(2, 0.3)
    gallery = Gallery(
        [ann, bob], ["ann", "bob"], negatives=[look_alike], negative_ids=["ann"], ratio=1.0
    )
    # The look-alike itself, and faces nearer to it than to ann, no longer match ann.
    assert gallery.match(look_alike, 0.6)[0].person_id is None
    assert gallery.match(look_alike + unit_vector(3, 0.05), 0.6)[0].person_id is None
    # Ann herself still matches, and bob is not affected by ann's negatives.
    assert gallery.match(ann + unit_vector(3, 0.1), 0.6)[0].person_id == "ann"
    assert gallery.match(bob + unit_vector(2, 0.05), 0.6)[0].person_id == "bob"
    # Negatives of someone not enrolled are ignored.
    other = Gallery([ann], ["ann"], negatives=[ann], negative_ids=["zed"])
    assert other.negative_count == 0 and other.match(ann)[0].person_id == "ann"


def test_person_thresholds_come_from_the_spread_of_their_faces() -> None:
    faces = [unit_vector(0), unit_vector(0) + unit_vector(1, 0.2), unit_vector(5)]
    limits = person_thresholds(faces, ["ann", "ann", "bob"])
    assert limits == {"ann": PERSON_THRESHOLD_FLOOR}  # 0.2 + slack is under the floor
    spread = [unit_vector(0), unit_vector(0) + unit_vector(1, 0.42)]
    assert person_thresholds(spread, ["cy", "cy"]) == {
        "cy": pytest.approx(0.42 + PERSON_THRESHOLD_SLACK, abs=1e-4)
    }
    gallery = Gallery(faces, ["ann", "ann", "bob"], thresholds=limits)
    assert gallery.threshold_of("ann") == PERSON_THRESHOLD_FLOOR
    assert gallery.threshold_of("bob") is None
    probe = unit_vector(0) + unit_vector(2, 0.55)
    # 0.55 is within the camera's 0.6 but not within ann's own 0.5.
    assert gallery.match(probe, 0.6)[0].person_id is None
    assert Gallery(faces, ["ann", "ann", "bob"]).match(probe, 0.6)[0].person_id == "ann"
    # The camera's threshold still caps a person's own.
    assert gallery.match(unit_vector(0) + unit_vector(2, 0.45), 0.4)[0].person_id is None


def test_one_probe_and_many_probes_agree_under_the_whole_rule() -> None:
    rng = np.random.default_rng(11)
    enrolled = rng.normal(0, 0.05, (300, EMBEDDING_DIM)).astype(np.float32)
    ids = [f"p{i % 60}" for i in range(300)]
    negatives = enrolled[:30] + rng.normal(0, 0.02, (30, EMBEDDING_DIM)).astype(np.float32)
    gallery = Gallery(
        enrolled,
        ids,
        thresholds=person_thresholds(enrolled, ids),
        negatives=negatives,
        negative_ids=[f"p{i % 60}" for i in range(30)],
    )
    probes = np.concatenate(
        [
            enrolled[::7] + rng.normal(0, 0.02, (43, EMBEDDING_DIM)).astype(np.float32),
            negatives[:10],
        ]
    )
    together = gallery.match(probes, 0.9)
    one_by_one = [gallery.match(probe, 0.9)[0] for probe in probes]
    assert [m.person_id for m in together] == [m.person_id for m in one_by_one]
    assert any(m.person_id is not None for m in together)
    assert any(m.person_id is None for m in together)
    for a, b in zip(together, one_by_one, strict=True):
        assert a.distance == pytest.approx(b.distance, abs=1e-5)


def test_the_wire_model_carries_the_whole_rule() -> None:
    faces = np.stack([unit_vector(0), unit_vector(0) + unit_vector(1, 0.2), unit_vector(5)])
    negatives = np.stack([unit_vector(0) + unit_vector(3, 0.3)])
    wire = GalleryOut(
        version=3,
        model="m",
        threshold=0.6,
        dim=EMBEDDING_DIM,
        person_ids=[1, 1, 2],
        people={"1": "ann", "2": "bob"},
        embeddings_b64=encode_matrix(faces),
        ratio=0.7,
        person_thresholds={"1": 0.5},
        negative_person_ids=[1],
        negatives_b64=encode_matrix(negatives),
    )
    gallery = from_wire(GalleryOut.model_validate_json(wire.model_dump_json()))
    assert (gallery.ratio, gallery.threshold_of("1"), gallery.negative_count) == (0.7, 0.5, 1)
    assert gallery.match(negatives[0], 0.6)[0].person_id is None
    assert gallery.match(faces[1], 0.6)[0].person_id == "1"
    # An older control plane's gallery has none of the new fields: the defaults apply.
    old = GalleryOut.model_validate(
        wire.model_dump(exclude={"ratio", "person_thresholds", "negatives_b64"})
        | {"negative_person_ids": []}
    )
    assert from_wire(old).ratio == DEFAULT_MATCH_RATIO
    broken = wire.model_copy(update={"negatives_b64": encode_matrix(faces)})
    with pytest.raises(ValueError, match="negatives hold"):
        from_wire(broken)
    with pytest.raises(ValueError, match="not base64"):
        from_wire(wire.model_copy(update={"embeddings_b64": "@@"}))


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.5, math.nan])
def test_bad_ratio_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="ratio"):
        Gallery([unit_vector(0)], ["ann"], ratio=ratio)


def test_person_thresholds_agree_with_a_loop_over_people() -> None:
    rng = np.random.default_rng(5)
    sizes = [1, 2, 2, 3, 5, 5, 5, 9]
    ids = [f"p{i}" for i, size in enumerate(sizes) for _ in range(size)]
    faces = rng.normal(0, 0.04, (len(ids), EMBEDDING_DIM)).astype(np.float32)
    expected = {}
    for pid in set(ids):
        own = faces[[i for i, who in enumerate(ids) if who == pid]].astype(np.float64)
        if len(own) < 2:
            continue
        distances = np.linalg.norm(own[:, None] - own[None], axis=2)
        np.fill_diagonal(distances, np.inf)
        spread = distances.min(axis=1).max()
        expected[pid] = max(PERSON_THRESHOLD_FLOOR, spread + PERSON_THRESHOLD_SLACK)
    got = person_thresholds(faces, ids)
    assert got.keys() == expected.keys()
    for pid, limit in expected.items():
        assert got[pid] == pytest.approx(limit, abs=1e-4)

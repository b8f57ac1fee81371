"""Gallery matching against a float64 brute-force reference, and its edge cases."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from facefleet.face.gallery import EMBEDDING_DIM, Gallery, Match

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


@settings(max_examples=200, deadline=None)
@given(
    enrolled=embeddings(40),
    data=st.data(),
    probes=embeddings(12),  # 8 probes or more take the matrix-product path
    threshold=st.floats(0.0, 4.0),
)
def test_match_agrees_with_brute_force(
    enrolled: npt.NDArray[np.float32],
    data: st.DataObject,
    probes: npt.NDArray[np.float32],
    threshold: float,
) -> None:
    # Few people for many rows, so people have several faces.
    ids = data.draw(
        st.lists(st.sampled_from(PEOPLE), min_size=len(enrolled), max_size=len(enrolled))
    )
    # Probes near enrolled faces too, so that some of them match.
    if len(enrolled):
        noise = data.draw(
            arrays(np.float32, probes.shape, elements=st.floats(-1 / 64, 1 / 64, width=32))
        )
        probes = probes.copy()
        probes[::2] = enrolled[np.arange(len(probes))[::2] % len(enrolled)] + noise[::2]
    matches = Gallery(enrolled, ids).match(probes, threshold)
    assert len(matches) == len(probes)

    for probe, match in zip(probes.astype(np.float64), matches, strict=True):
        if not len(enrolled):
            assert match == Match(None, math.inf)
            continue
        squared = ((enrolled.astype(np.float64) - probe) ** 2).sum(axis=1)
        best = squared.min()
        # float32 rounding of |g|^2 + |p|^2 - 2 g.p, bounded by the magnitudes involved.
        tolerance = (
            1e-5 * (probe @ probe + (enrolled.astype(np.float64) ** 2).sum(axis=1).max()) + 1e-9
        )
        assert abs(match.distance**2 - best) <= tolerance
        if best < threshold**2 - tolerance:
            assert match.person_id is not None
            # Ties within rounding may pick either face, but only a nearest one.
            own = [s for s, who in zip(squared, ids, strict=True) if who == match.person_id]
            assert min(own) <= best + tolerance
        elif best > threshold**2 + tolerance:
            assert match.person_id is None


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

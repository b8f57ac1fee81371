"""The matching rule: which enrolled person, if any, a face embedding is.

One definition, used by the control plane (``/v1/recognize``, stranger clustering) and by the
workers, which rebuild it from the gallery wire model (``from_wire``). A probe matches the
person of its nearest enrolled face only when all of these hold:

1. that distance is within the threshold (the camera's or the tenant's), and within the
   person's own threshold when they have one (``person_thresholds``);
2. it is clearly nearer than any competitor, ``d1 <= ratio * d2`` (a ratio test), where the
   competitors are the nearest face of every *other* person and the person's negative
   examples (faces an operator said are not them). A face between two enrolled people, or
   close to a face that was "not this person", is unknown rather than a guess.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from facefleet.face.model import EMBEDDING_DIM
from facefleet.protocol.gallery import DEFAULT_MATCH_RATIO

if TYPE_CHECKING:
    from facefleet.protocol.gallery import GalleryOut

__all__ = [
    "DEFAULT_MATCH_RATIO",
    "DEFAULT_THRESHOLD",
    "EMBEDDING_DIM",
    "PERSON_THRESHOLD_FLOOR",
    "PERSON_THRESHOLD_SLACK",
    "Gallery",
    "Match",
    "decode_matrix",
    "encode_matrix",
    "from_wire",
    "person_thresholds",
]
# dlib's ResNet was trained so that faces of one person lie within 0.6 of each other.
DEFAULT_THRESHOLD = 0.6
# A person with several photos gets the largest distance from one of their photos to the
# nearest of their others, plus this slack, as their own threshold, never below the floor:
# a fresh photo of them is expected about as close as their photos are to each other, and
# every extra photo is one more chance for a stranger to fall within a loose threshold.
PERSON_THRESHOLD_SLACK = 0.15
PERSON_THRESHOLD_FLOOR = 0.5

# From this many probes, one matrix product (a single pass over the gallery) beats a
# matrix-vector product per probe on large galleries, where time matters; on small ones
# either way takes microseconds.
_MATRIX_PRODUCT_MIN_PROBES = 8
# Bounds the (probes x gallery) distance block of a matrix product to 64 MiB.
_BLOCK_ELEMENTS = 1 << 24

Matrix = npt.NDArray[np.float32]


# A NamedTuple, not a dataclass: it is built per probe on the hot path, and cheaply.
class Match(NamedTuple):
    # None: unknown (nobody within the threshold, too close to call, or vetoed).
    person_id: str | None
    # Euclidean distance to the nearest enrolled face, even when unknown; inf if none.
    distance: float


class Gallery:
    """Enrolled embeddings as one read-only (n, 128) float32 matrix, with a person id per row.

    A person may have several rows; their rows are kept together (in the order given), so
    each person is one slice of the matrix and the second-nearest person costs one more
    pass over the distances, not a pass per person.
    """

    def __init__(
        self,
        embeddings: npt.ArrayLike,
        person_ids: Sequence[str],
        *,
        ratio: float = DEFAULT_MATCH_RATIO,
        thresholds: Mapping[str, float] | None = None,
        negatives: npt.ArrayLike | None = None,
        negative_ids: Sequence[str] = (),
    ) -> None:
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], not {ratio}")
        matrix = _as_matrix(embeddings, "embeddings")
        if len(person_ids) != matrix.shape[0]:
            raise ValueError(
                f"{matrix.shape[0]} embeddings but {len(person_ids)} person ids: one id per row"
            )
        people: dict[str, int] = {}
        codes = np.fromiter(
            (people.setdefault(pid, len(people)) for pid in person_ids), np.intp, len(person_ids)
        )
        order = np.argsort(codes, kind="stable")
        # A private, grouped copy: the cached norms must stay true to the matrix.
        matrix = np.ascontiguousarray(matrix[order])
        codes = codes[order]
        matrix.flags.writeable = False
        self._embeddings = matrix
        self._half_norms = np.einsum("ij,ij->i", matrix, matrix) * np.float32(0.5)
        self._person_ids = tuple(person_ids[i] for i in order.tolist())
        self._people = tuple(people)
        self._row_person = codes
        self._row_person_list: list[int] = codes.tolist()
        bounds = np.searchsorted(codes, np.arange(len(people) + 1))
        self._starts: list[int] = bounds[:-1].tolist()
        self._ends: list[int] = bounds[1:].tolist()
        self._several_rows = np.diff(bounds) > 1
        self.ratio = ratio
        limits = [math.inf] * len(people)
        for pid, limit in (thresholds or {}).items():
            if not limit >= 0.0:
                raise ValueError(f"the threshold of {pid!r} must be 0 or more, not {limit}")
            if pid in people:
                limits[people[pid]] = float(limit)
        self._limits = limits
        self._limit_array = np.array(limits, dtype=np.float64)
        self._set_negatives(negatives, negative_ids, people)

    def _set_negatives(
        self, negatives: npt.ArrayLike | None, ids: Sequence[str], people: dict[str, int]
    ) -> None:
        matrix = _as_matrix([] if negatives is None else negatives, "negatives")
        if len(ids) != matrix.shape[0]:
            raise ValueError(f"{matrix.shape[0]} negatives but {len(ids)} person ids")
        # Negatives of someone with no enrolled face can never matter: they are dropped.
        kept = [(people[pid], row) for row, pid in enumerate(ids) if pid in people]
        kept.sort(key=lambda item: item[0])
        codes = np.array([code for code, _ in kept], dtype=np.intp)
        self._negatives = np.ascontiguousarray(matrix[[row for _, row in kept]])
        bounds = np.searchsorted(codes, np.arange(len(people) + 1))
        self._negative_bounds: list[tuple[int, int]] = list(
            zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
        )
        self._has_negatives = [start < end for start, end in self._negative_bounds]
        self._negative_array = np.array(self._has_negatives, dtype=bool)

    @classmethod
    def empty(cls) -> Gallery:
        return cls(np.empty((0, EMBEDDING_DIM), dtype=np.float32), ())

    def __len__(self) -> int:
        return len(self._person_ids)

    @property
    def embeddings(self) -> Matrix:
        """The enrolled rows, each person's together (the order of ``person_ids``)."""
        return self._embeddings

    @property
    def person_ids(self) -> tuple[str, ...]:
        return self._person_ids

    @property
    def negative_count(self) -> int:
        return int(self._negatives.shape[0])

    def threshold_of(self, person_id: str) -> float | None:
        """The person's own threshold (None: only the camera's or tenant's applies)."""
        try:
            limit = self._limits[self._people.index(person_id)]
        except ValueError:
            return None
        return None if math.isinf(limit) else limit

    def match(self, probes: npt.ArrayLike, threshold: float = DEFAULT_THRESHOLD) -> list[Match]:
        """Match each probe, (128,) or (m, 128), by the rule in the module's docstring.

        A probe with a NaN or infinite value raises ValueError.
        """
        if not threshold >= 0.0:  # written so that NaN is refused too
            raise ValueError(f"threshold must be 0 or more, not {threshold}")
        probe_matrix = _as_probe_matrix(probes)
        if not self._person_ids:
            return [Match(None, math.inf)] * probe_matrix.shape[0]
        if probe_matrix.shape[0] < _MATRIX_PRODUCT_MIN_PROBES:
            return [self._match_one(probe, threshold) for probe in probe_matrix]
        return self._match_many(probe_matrix, threshold)

    def _match_one(self, probe: Matrix, threshold: float) -> Match:
        # |g - p|^2 = |p|^2 - 2 (g.p - |g|^2 / 2). |p|^2 is the same for every row, so the
        # nearest row is the argmax of g.p - |g|^2 / 2, and the sqrt is taken for it alone.
        score = self._embeddings @ probe
        score -= self._half_norms
        index = int(score.argmax())
        probe_norm = float(probe @ probe)
        squared = probe_norm - 2.0 * float(score[index])
        # The gallery is finite, so only a NaN or infinite probe makes this sum non-finite:
        # one check here instead of one per element up front, which costs ~10% at 1,000 faces.
        if not math.isfinite(squared):
            raise ValueError("probes must be finite")
        distance = math.sqrt(max(0.0, squared))
        code = self._row_person_list[index]
        if distance > threshold or distance > self._limits[code]:
            return Match(None, distance)
        rival = math.inf
        start, end = self._starts[code], self._ends[code]
        if self.ratio < 1.0 and end - start < len(score):
            # The person's own rows are one slice: hide them, and the best score left is
            # the nearest face of anyone else.
            score[start:end] = -np.inf
            rival = math.sqrt(max(0.0, probe_norm - 2.0 * float(score.max())))
        if self._has_negatives[code]:
            rival = min(rival, self._nearest_negative(probe, code))
        if distance > self.ratio * rival:
            return Match(None, distance)
        return Match(self._people[code], distance)

    def _nearest_negative(self, probe: Matrix, code: int) -> float:
        start, end = self._negative_bounds[code]
        if start == end:
            return math.inf
        diff = self._negatives[start:end] - probe
        return math.sqrt(float(np.einsum("ij,ij->i", diff, diff).min()))

    def _match_many(self, probes: Matrix, threshold: float) -> list[Match]:
        rows_per_block = max(1, _BLOCK_ELEMENTS // len(self))
        matches: list[Match] = []
        limits = np.minimum(self._limit_array, threshold)
        ratio_test = self.ratio < 1.0 and len(self._people) > 1
        people = self._people
        for begin in range(0, probes.shape[0], rows_per_block):
            block = probes[begin : begin + rows_per_block]
            score = block @ self._embeddings.T
            score -= self._half_norms
            indices = score.argmax(axis=1)
            rows = np.arange(len(indices))
            probe_norms = np.einsum("ij,ij->i", block, block)
            squared = probe_norms - 2.0 * score[rows, indices]
            if not np.isfinite(squared).all():
                raise ValueError("probes must be finite")
            distances = np.sqrt(np.maximum(squared, 0.0))
            codes = self._row_person[indices]
            accepted = distances <= limits[codes]
            candidates = np.flatnonzero(accepted)
            rivals = np.full(len(indices), np.inf)
            if ratio_test and len(candidates):
                # Hide each candidate's own rows (one write for people with a single row),
                # then one more pass over the block finds the nearest face of anyone else.
                score[candidates, indices[candidates]] = -np.inf
                for row in candidates[self._several_rows[codes[candidates]]].tolist():
                    code = int(codes[row])
                    score[row, self._starts[code] : self._ends[code]] = -np.inf
                rivals = np.sqrt(np.maximum(probe_norms - 2.0 * score.max(axis=1), 0.0))
            for row in candidates[self._negative_array[codes[candidates]]].tolist():
                code = int(codes[row])
                rivals[row] = min(float(rivals[row]), self._nearest_negative(block[row], code))
            accepted &= distances <= self.ratio * rivals
            matches.extend(
                Match(people[code] if ok else None, distance)
                for code, distance, ok in zip(
                    codes.tolist(), distances.tolist(), accepted.tolist(), strict=True
                )
            )
        return matches


def person_thresholds(embeddings: npt.ArrayLike, person_ids: Sequence[str]) -> dict[str, float]:
    """Each person with two faces or more: their own threshold (see PERSON_THRESHOLD_*)."""
    matrix = _as_matrix(embeddings, "embeddings").astype(np.float64)
    rows: dict[str, list[int]] = {}
    for row, pid in enumerate(person_ids):
        rows.setdefault(pid, []).append(row)
    by_size: dict[int, list[str]] = {}
    for pid, own in rows.items():
        if len(own) > 1:
            by_size.setdefault(len(own), []).append(pid)
    out: dict[str, float] = {}
    # People with as many faces as each other are done together: one (people, k, k) block
    # of distances instead of a Python loop over thousands of people.
    for size, people in by_size.items():
        for start in range(0, len(people), max(1, _BLOCK_ELEMENTS // (size * size))):
            chunk = people[start : start + max(1, _BLOCK_ELEMENTS // (size * size))]
            faces = matrix[[rows[pid] for pid in chunk]]  # (people, size, 128)
            norms = np.einsum("gid,gid->gi", faces, faces)
            squared = norms[:, :, None] + norms[:, None, :]
            squared -= 2.0 * np.einsum("gid,gjd->gij", faces, faces)
            squared[:, np.arange(size), np.arange(size)] = np.inf
            spreads = np.sqrt(np.maximum(squared.min(axis=2).max(axis=1), 0.0))
            for pid, spread in zip(chunk, spreads.tolist(), strict=True):
                out[pid] = round(max(PERSON_THRESHOLD_FLOOR, spread + PERSON_THRESHOLD_SLACK), 4)
    return out


def encode_matrix(rows: Sequence[bytes] | Matrix) -> str:
    """float32 little-endian rows (bytes each, or a matrix) as the wire's base64."""
    if isinstance(rows, np.ndarray):
        return base64.b64encode(rows.astype("<f4").tobytes()).decode()
    return base64.b64encode(b"".join(rows)).decode()


def decode_matrix(data: str, rows: int, what: str) -> Matrix:
    """The wire's base64 float32 rows as an (rows, 128) matrix; ValueError when malformed."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} are not base64: {exc}") from exc
    if len(raw) != rows * EMBEDDING_DIM * 4:
        raise ValueError(f"{what} hold {len(raw)} bytes, expected {rows} rows of float32")
    return np.frombuffer(raw, dtype="<f4").reshape(rows, EMBEDDING_DIM)


def from_wire(data: GalleryOut) -> Gallery:
    """The gallery a worker (or the control plane) matches with, from the wire model."""
    if data.dim != EMBEDDING_DIM:
        raise ValueError(f"gallery dim {data.dim}, expected {EMBEDDING_DIM}")
    embeddings = decode_matrix(data.embeddings_b64, len(data.person_ids), "gallery embeddings")
    negatives = decode_matrix(
        data.negatives_b64, len(data.negative_person_ids), "gallery negatives"
    )
    return Gallery(
        embeddings,
        [str(pid) for pid in data.person_ids],
        ratio=data.ratio,
        thresholds=data.person_thresholds,
        negatives=negatives,
        negative_ids=[str(pid) for pid in data.negative_person_ids],
    )


def _as_matrix(values: npt.ArrayLike, what: str) -> Matrix:
    matrix = np.array(values, dtype=np.float32, order="C", copy=True)
    if matrix.shape == (0,):  # an empty list
        matrix = matrix.reshape(0, EMBEDDING_DIM)
    if matrix.ndim != 2 or matrix.shape[1] != EMBEDDING_DIM:
        raise ValueError(f"{what} must have shape (n, {EMBEDDING_DIM}), not {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{what} must be finite")
    return matrix


def _as_probe_matrix(probes: npt.ArrayLike) -> Matrix:
    matrix = np.asarray(probes, dtype=np.float32)
    if matrix.shape == (0,):  # an empty list: no probes
        matrix = matrix.reshape(0, EMBEDDING_DIM)
    elif matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[1] != EMBEDDING_DIM:
        raise ValueError(
            f"probes must have shape ({EMBEDDING_DIM},) or (m, {EMBEDDING_DIM}), "
            f"not {np.shape(probes)}"
        )
    return np.ascontiguousarray(matrix)

"""Nearest-neighbour matching of face embeddings against the enrolled faces of a tenant."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from facefleet.face.model import EMBEDDING_DIM

# Length of dlib's ResNet descriptors. Defined here, not in the engine, so that matching
# never loads dlib.
__all__ = ["DEFAULT_THRESHOLD", "EMBEDDING_DIM", "Gallery", "Match"]
# dlib's ResNet was trained so that faces of one person lie within 0.6 of each other.
DEFAULT_THRESHOLD = 0.6

# From this many probes, one matrix product (a single pass over the gallery) beats a
# matrix-vector product per probe on large galleries, where time matters; on small ones
# either way takes microseconds.
_MATRIX_PRODUCT_MIN_PROBES = 8
# Bounds the (probes x gallery) distance block of a matrix product to 64 MiB.
_BLOCK_ELEMENTS = 1 << 24


# A NamedTuple, not a dataclass: it is built per probe on the hot path, and cheaply.
class Match(NamedTuple):
    # None: unknown, as no enrolled face is within the threshold (or none is enrolled).
    person_id: str | None
    # Euclidean distance to the nearest enrolled face, even when unknown; inf if none.
    distance: float


class Gallery:
    """Enrolled embeddings as one read-only (n, 128) float32 matrix, with a person id per row.

    A person may have several rows; the nearest of them decides a match.
    """

    def __init__(self, embeddings: npt.ArrayLike, person_ids: Sequence[str]) -> None:
        # A private copy: the cached norms must stay true to the matrix.
        matrix = np.array(embeddings, dtype=np.float32, order="C", copy=True)
        if matrix.shape == (0,):  # an empty list
            matrix = matrix.reshape(0, EMBEDDING_DIM)
        if matrix.ndim != 2 or matrix.shape[1] != EMBEDDING_DIM:
            raise ValueError(f"embeddings must have shape (n, {EMBEDDING_DIM}), not {matrix.shape}")
        if len(person_ids) != matrix.shape[0]:
            raise ValueError(
                f"{matrix.shape[0]} embeddings but {len(person_ids)} person ids: one id per row"
            )
        if not np.isfinite(matrix).all():
            raise ValueError("embeddings must be finite")
        matrix.flags.writeable = False
        self._embeddings = matrix
        self._squared_norms = np.einsum("ij,ij->i", matrix, matrix)
        self._person_ids = tuple(person_ids)

    @classmethod
    def empty(cls) -> Gallery:
        return cls(np.empty((0, EMBEDDING_DIM), dtype=np.float32), ())

    def __len__(self) -> int:
        return len(self._person_ids)

    @property
    def embeddings(self) -> npt.NDArray[np.float32]:
        return self._embeddings

    @property
    def person_ids(self) -> tuple[str, ...]:
        return self._person_ids

    def match(self, probes: npt.ArrayLike, threshold: float = DEFAULT_THRESHOLD) -> list[Match]:
        """Match each probe, (128,) or (m, 128), to the person of its nearest enrolled face.

        A probe matches when that distance is at most ``threshold``. A probe with a NaN or
        infinite value raises ValueError.
        """
        if not threshold >= 0.0:  # written so that NaN is refused too
            raise ValueError(f"threshold must be 0 or more, not {threshold}")
        probe_matrix = _as_probe_matrix(probes)
        if not self._person_ids:
            return [Match(None, math.inf)] * probe_matrix.shape[0]
        if probe_matrix.shape[0] < _MATRIX_PRODUCT_MIN_PROBES:
            nearest = [self._nearest_one(probe) for probe in probe_matrix]
        else:
            nearest = self._nearest_many(probe_matrix)
        ids = self._person_ids
        return [
            Match(ids[index] if distance <= threshold else None, distance)
            for index, distance in nearest
        ]

    def _nearest_one(self, probe: npt.NDArray[np.float32]) -> tuple[int, float]:
        # |g - p|^2 = |g|^2 + |p|^2 - 2 g.p. |p|^2 is the same for every row, so the argmin
        # needs only |g|^2 - 2 g.p, and the sqrt is taken for the winner alone.
        partial = self._embeddings @ probe
        partial *= -2.0
        partial += self._squared_norms
        index = int(partial.argmin())
        squared = float(probe @ probe) + float(partial[index])
        # The gallery is finite, so only a NaN or infinite probe makes this sum non-finite:
        # one check here instead of one per element up front, which costs ~10% at 1,000 faces.
        if not math.isfinite(squared):
            raise ValueError("probes must be finite")
        return index, math.sqrt(max(0.0, squared))

    def _nearest_many(self, probes: npt.NDArray[np.float32]) -> list[tuple[int, float]]:
        rows_per_block = max(1, _BLOCK_ELEMENTS // len(self))
        nearest: list[tuple[int, float]] = []
        for start in range(0, probes.shape[0], rows_per_block):
            block_probes = probes[start : start + rows_per_block]
            partial = block_probes @ self._embeddings.T
            partial *= -2.0
            partial += self._squared_norms
            indices = partial.argmin(axis=1)
            best = partial[np.arange(len(indices)), indices]
            squared = np.einsum("ij,ij->i", block_probes, block_probes) + best
            if not np.isfinite(squared).all():
                raise ValueError("probes must be finite")
            distances = np.sqrt(np.maximum(squared, 0.0))
            nearest.extend(zip(indices.tolist(), distances.tolist(), strict=True))
        return nearest


def _as_probe_matrix(probes: npt.ArrayLike) -> npt.NDArray[np.float32]:
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

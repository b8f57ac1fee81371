"""Which dlib this process runs: the dlib-bin wheel (no BLAS) or a build against OpenBLAS.

The BLAS build computes face embeddings 2-3x faster (docs/performance.md); workers report
which one they run, so a slow fleet can be told apart from a slow camera.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata


@dataclass(frozen=True)
class DlibBuild:
    distribution: str  # the installed package that provides the dlib module
    version: str
    blas: bool

    def __str__(self) -> str:
        return f"{self.distribution} {self.version} ({'BLAS' if self.blas else 'no BLAS'})"


@functools.cache
def dlib_build() -> DlibBuild:
    import dlib

    # Both builds install the extension _dlib_pybind11 beside the dlib package.
    found = metadata.packages_distributions()
    providers = found.get("_dlib_pybind11") or found.get("dlib") or []
    distribution = providers[0] if providers else "dlib"
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        version = str(getattr(dlib, "__version__", "unknown"))
    return DlibBuild(distribution, version, bool(getattr(dlib, "DLIB_USE_BLAS", False)))


__all__ = ["DlibBuild", "dlib_build"]

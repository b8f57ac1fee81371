"""Where the shared face fixtures are: the shared/fixtures folder beside the repository
(CI lays it there too). Tests that need it skip with this reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES_DIR = (Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures").resolve()


def require_fixtures() -> Path:
    if not FIXTURES_DIR.is_dir():
        pytest.skip(
            f"face fixtures not found at {FIXTURES_DIR}: "
            "the shared/fixtures folder must sit beside the repository"
        )
    return FIXTURES_DIR

"""Validation shared by worker labels and camera required labels."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

Label = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$", strip_whitespace=True)
]

"""Lua scripts for Redis, kept as ``.lua`` files beside the module that runs them."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def script(package: str, name: str) -> str:
    """The text of ``<name>.lua`` in ``package``'s ``lua`` folder, read once."""
    return files(package).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")

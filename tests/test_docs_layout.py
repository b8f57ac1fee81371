"""docs/architecture.md's layout names every module of the package, and only modules that
exist, so the map cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "facefleet"


def layout_block() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    match = re.search(r"## Layout\s*```\n(.*?)```", text, re.S)
    assert match, "docs/architecture.md has no layout block"
    return match.group(1)


def modules() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if path.name == "__init__.py" or "migrations" in relative.parts:
            continue
        found.add(path.name)
    return found


def test_every_module_is_in_the_layout() -> None:
    named = set(re.findall(r"[\w*]+\.py", layout_block()))
    patterns = [re.compile(n.replace("*", r"\w+") + "$") for n in named if "*" in n]
    missing = sorted(
        m for m in modules() if m not in named and not any(p.match(m) for p in patterns)
    )
    assert missing == [], f"modules not in docs/architecture.md's layout: {missing}"


def test_the_layout_names_no_module_that_is_gone() -> None:
    existing = modules() | {"__init__.py"}
    named = set(re.findall(r"(?<![\w*])\w+\.py", layout_block()))  # not *_repo.py
    gone = sorted(named - existing)
    assert gone == [], f"docs/architecture.md's layout names missing modules: {gone}"

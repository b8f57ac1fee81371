"""docs/architecture.md's layout names every module of the package, and only modules that
exist, so the map cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "facefleet"


def named_in_layout() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    match = re.search(r"## Layout\s*```\n(.*?)```", text, re.S)
    assert match, "docs/architecture.md has no layout block"
    return set(re.findall(r"\w+\.py", match.group(1)))


def modules() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if path.name == "__init__.py" or "migrations" in relative.parts:
            continue
        found.add(path.name)
    return found


def test_every_module_is_in_the_layout() -> None:
    missing = sorted(modules() - named_in_layout())
    assert missing == [], f"modules not in docs/architecture.md's layout: {missing}"


def test_the_layout_names_no_module_that_is_gone() -> None:
    gone = sorted(named_in_layout() - modules() - {"__init__.py"})
    assert gone == [], f"docs/architecture.md's layout names missing modules: {gone}"

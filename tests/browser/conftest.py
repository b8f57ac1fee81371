"""Debian's chromium driven by Playwright, the dashboard signed in, and a screenshot of
every step in FACEFLEET_SCREENSHOT_DIR (default: build/screenshots in the repository)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect, sync_playwright

from tests.fixtures.services import unavailable

CHROMIUM = "/usr/bin/chromium"
# Headless, no sandbox (CI runs as root), and nothing that reaches for the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
# Two cores run the control plane, two face-detecting workers and the browser.
expect.set_options(timeout=20_000)
VIEWPORT = {"width": 1440, "height": 900}


def screenshot_dir() -> Path:
    path = Path(os.environ.get("FACEFLEET_SCREENSHOT_DIR") or REPO / "build" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


# Package scope: while Playwright's sync API runs, it marks an event loop as running in
# this thread, so it must be gone before the async tests of other packages run.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        unavailable(
            "Debian's chromium",
            FileNotFoundError(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"),
        )
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="package")
def browser(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    context = playwright.chromium.launch_persistent_context(
        tmp_path_factory.mktemp("chromium-profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport=VIEWPORT,  # type: ignore[arg-type]
    )
    context.set_default_timeout(20_000)
    yield context
    context.close()


@dataclass
class Screenshots:
    folder: Path
    taken: list[Path] = field(default_factory=list)

    def take(self, page: Page, name: str) -> Path:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = self.folder / f"{len(self.taken) + 1:02d}-{slug}.png"
        page.screenshot(path=path, full_page=True)
        self.taken.append(path)
        return path


@pytest.fixture(scope="session")
def screenshots() -> Screenshots:
    folder = screenshot_dir()
    for old in folder.glob("[0-9][0-9]-*.png"):  # this suite's own, from an earlier run
        old.unlink()
    return Screenshots(folder)


@dataclass
class Dashboard:
    """The dashboard of one control plane, in pages of the shared browser."""

    url: str
    browser: BrowserContext
    keys: dict[str, str]
    pages: list[Page] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self) -> Page:
        """A new tab: its own sessionStorage, so signed out."""
        page = self.browser.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.pages.append(page)
        return page

    def sign_in(self, page: Page, role: str) -> None:
        page.goto(f"{self.url}/")
        page.fill("input[name=api-key]", self.keys[role])
        page.click("form[aria-label='sign in'] button[type=submit]")
        expect(page.locator("#connection")).to_have_attribute("data-status", "live")

    def go(self, page: Page, where: str) -> None:
        page.goto(f"{self.url}/#/{where}")

    def close(self) -> None:
        for page in self.pages:
            page.close()
        assert not self.errors, f"the dashboard raised: {self.errors}"

"""Console tests: a real `nube serve`, driven by Playwright in Debian's headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.api.harness import ADMIN_PASSWORD, Nube

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
# Generous: two shared cores, TCG guests, other engineers' tests running beside ours.
TIMEOUT_MS = 60_000
expect.set_options(timeout=30_000)

REASON = (
    None if CHROMIUM.exists() else "Debian's chromium is not installed (tests/run.sh installs it)"
)
if REASON:
    print(f"tests/console skipped: {REASON}")


@pytest.fixture(scope="session")
def nube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nube]:
    server = Nube(tmp_path_factory.mktemp("nube") / "data")
    server.start()
    yield server
    server.stop()


# Module scope: Playwright's sync API keeps an event loop running on the main thread while it lives,
# and later tiers (unit, tui) call asyncio.run(); it must be gone when the console modules end.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if REASON:
        pytest.skip(REASON)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def login(page: Page, nube: Nube, user: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    page.goto(f"{nube.url}/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/console/$"))


def screenshot(page: Page, name: str) -> None:
    """Kept as a test artifact (tests/console/artifacts/, git-ignored; CI uploads it)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def flash(page: Page) -> str:
    return page.locator(".flash").first.inner_text()


__all__ = ["flash", "login", "screenshot"]

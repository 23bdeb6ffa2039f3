"""The layout at phone width: every main page fits a 390 px screen without sideways scrolling of
the page itself (wide tables scroll inside their own box), and the navigation stays reachable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.api.harness import Nube
from tests.console.conftest import TIMEOUT_MS, login, screenshot

PAGES = ("", "instances", "instances/launch", "images", "volumes", "networks", "security-groups",
         "floating-ips", "keypairs", "objects", "access", "admin")  # fmt: skip


@pytest.fixture(scope="module")
def phone(browser: Browser, nube: Nube) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    login(page, nube)
    yield page
    context.close()


@pytest.mark.parametrize("path", PAGES)
def test_the_page_fits_a_phone_screen(phone: Page, nube: Nube, path: str) -> None:
    response = phone.goto(f"{nube.url}/console/{path}")
    assert response is not None and response.status == 200
    expect(phone.get_by_role("navigation", name="Console sections")).to_be_visible()
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"/console/{path} is {overflow} px wider than the screen"
    screenshot(phone, f"phone-{path.replace('/', '-') or 'overview'}")

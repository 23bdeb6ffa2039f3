"""Console tests: a real `nube serve`, driven by Playwright in Debian's headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.api.harness import ADMIN_PASSWORD, Nube
from tests.api.test_compute import wait_for
from tests.api.test_network import dnsmasqs, kernel_names

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark this tier, so `pytest -m "not console"` can leave the browser out."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.console)


@pytest.fixture(scope="session")
def nube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nube]:
    server = Nube(tmp_path_factory.mktemp("nube") / "data")
    server.start()
    yield server
    try:
        purge(server)
    finally:
        server.stop()


def purge(nube: Nube) -> None:
    """Delete what the pages made in every project, so nube removes its bridges, namespaces and
    dnsmasqs (they outlive the process otherwise), and check that nothing with its prefix is left."""
    h = {"X-Auth-Token": nube.token(), "OpenStack-API-Version": "compute 2.96"}
    net = f"{nube.url}/networking/v2.0"
    servers = requests.get(f"{nube.url}/compute/v2.1/servers?all_tenants=1", headers=h, timeout=30)
    for s in servers.json()["servers"]:
        requests.delete(f"{nube.url}/compute/v2.1/servers/{s['id']}", headers=h, timeout=30)
    wait_for(lambda: not requests.get(f"{nube.url}/compute/v2.1/servers?all_tenants=1", headers=h,
                                      timeout=30).json()["servers"], what="servers deleted")  # fmt: skip
    for fip in requests.get(f"{net}/floatingips", headers=h, timeout=30).json()["floatingips"]:
        requests.delete(f"{net}/floatingips/{fip['id']}", headers=h, timeout=30)
    for router in requests.get(f"{net}/routers", headers=h, timeout=30).json()["routers"]:
        requests.put(f"{net}/routers/{router['id']}", json={"router": {"external_gateway_info": {}}},
                     headers=h, timeout=30)  # fmt: skip
        ports = requests.get(f"{net}/ports?device_id={router['id']}", headers=h, timeout=30).json()
        for port in ports["ports"]:
            requests.put(f"{net}/routers/{router['id']}/remove_router_interface",
                         json={"port_id": port["id"]}, headers=h, timeout=30)  # fmt: skip
        requests.delete(f"{net}/routers/{router['id']}", headers=h, timeout=30)
    for network in requests.get(f"{net}/networks", headers=h, timeout=30).json()["networks"]:
        requests.delete(f"{net}/networks/{network['id']}", headers=h, timeout=30)
    wait_for(lambda: not kernel_names(nube) and not dnsmasqs(nube), timeout=60,
             what="the datapath to be removed")  # fmt: skip


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

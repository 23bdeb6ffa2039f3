"""Issue #8's "Done when", in the browser on a Nube with its default networks (`public`, and
`private` behind `router1`): the admin logs in, launches nube-tiny on `private` from the wizard,
allocates a floating IP from `public` and associates it, opens port 80 in the default group, all on
the pages; then the host (this test process) fetches http://<floating IP>/ and the guest answers
with its hostname. Nothing of this cloud stays in the kernel afterwards."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.api.harness import ADMIN_PASSWORD, BIN, Nube, unused_cidr
from tests.api.test_compute import REASON as COMPUTE_REASON
from tests.api.test_compute import wait_for
from tests.console.conftest import TIMEOUT_MS, login, screenshot

BOOT_MS = 300_000

if COMPUTE_REASON:
    print(f"tests/console/test_done_when.py skipped: {COMPUTE_REASON}")
pytestmark = pytest.mark.skipif(COMPUTE_REASON is not None, reason=COMPUTE_REASON or "")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nube]:
    server = Nube(tmp_path_factory.mktemp("done") / "data",
                  extra_env={"NUBE_PUBLIC_CIDR": unused_cidr()})  # fmt: skip
    server.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        imported = subprocess.run([str(BIN / "nube"), "image", "import-default", "--data-dir",
                                   str(server.data_dir)], env=env, capture_output=True, text=True,
                                  timeout=300)  # fmt: skip
        assert imported.returncode == 0, imported.stderr + imported.stdout
        yield server
    finally:
        try:
            delete_servers(server)
        finally:
            server.stop()
            done = subprocess.run([str(BIN / "nube"), "clear-datapath", "--data-dir", str(server.data_dir)],
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
            assert done.returncode == 0, done.stderr


def delete_servers(nube: Nube) -> None:
    """The VMs go first (libvirt keeps them otherwise); clear-datapath then takes the rest."""
    h = {"X-Auth-Token": nube.token()}
    servers = f"{nube.url}/compute/v2.1/servers"
    for s in requests.get(f"{servers}?all_tenants=1", headers=h, timeout=30).json()["servers"]:
        requests.delete(f"{servers}/{s['id']}", headers=h, timeout=30)
    wait_for(lambda: not requests.get(f"{servers}?all_tenants=1", headers=h, timeout=30).json()["servers"],
             what="servers deleted")  # fmt: skip


@pytest.fixture(scope="module")
def page(browser: Browser, cloud: Nube) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    p = context.new_page()
    login(p, cloud, "admin", ADMIN_PASSWORD)
    yield p
    context.close()


def fetch(url: str) -> str:
    """GET from the host itself, never through a proxy the environment may name."""
    with requests.Session() as s:
        s.trust_env = False
        try:
            return s.get(url, timeout=5).text
        except requests.RequestException as e:
            return f"failed: {e}"


def test_a_newcomer_serves_http_from_an_instance_on_a_floating_ip_without_the_cli(
    page: Page, cloud: Nube
) -> None:
    page.goto(f"{cloud.url}/console/instances/launch")
    page.get_by_label("Instance name").fill("hello1")
    page.get_by_label("Image", exact=True).select_option(label="nube-tiny")
    flavor = page.get_by_label("Flavor", exact=True).locator("option", has_text="m1.nano")
    page.get_by_label("Flavor", exact=True).select_option(flavor.get_attribute("value"))
    expect(page.get_by_label("private")).to_be_checked()
    page.get_by_role("button", name="Launch").click()
    expect(page.locator(".flash")).to_contain_text("Launching hello1")
    match = re.search(r"/console/instances/([0-9a-f-]{36})$", page.url)
    assert match, page.url
    server_id = match.group(1)
    expect(page.locator("[data-field=status]")).to_have_text("ACTIVE", timeout=BOOT_MS)
    expect(page.get_by_role("cell", name=re.compile(r"private: 10\.0\.0\."))).to_be_visible()

    page.goto(f"{cloud.url}/console/floating-ips")
    page.get_by_label("External network").select_option(label="public")
    page.get_by_role("button", name="Allocate floating IP").click()
    expect(page.locator(".flash")).to_contain_text("allocated")
    found = re.search(r"Floating IP (\S+) allocated", page.locator(".flash").inner_text())
    assert found
    address = found.group(1)

    page.goto(f"{cloud.url}/console/instances/{server_id}")
    page.get_by_label("Floating IP", exact=True).select_option(label=address)
    page.get_by_role("button", name="Associate").click()
    expect(page.locator(".flash")).to_contain_text(f"Floating IP {address} associated")
    expect(page.get_by_text(f"{address} → 10.0.0.")).to_be_visible()

    # Before the rule, the default group keeps port 80 closed to the host.
    assert fetch(f"http://{address}/").startswith("failed")
    page.goto(f"{cloud.url}/console/security-groups")
    group = page.locator("section.card", has=page.get_by_role("heading", name="default"))
    group.get_by_label("Port from").fill("80")
    group.get_by_role("button", name="Add rule").click()
    expect(page.locator(".flash")).to_contain_text("Rule added")
    group = page.locator("section.card", has=page.get_by_role("heading", name="default"))
    expect(group.get_by_role("row", name="ingress tcp (IPv4) 80 anywhere")).to_be_visible()

    answer = wait_for(lambda: (body := fetch(f"http://{address}/")).startswith("hello1") and body,
                      what=f"the guest's web page on {address}")  # fmt: skip
    assert answer.split() == ["hello1", server_id]
    page.goto(f"{cloud.url}/console/instances/{server_id}")
    screenshot(page, "done-when")

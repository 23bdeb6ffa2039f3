"""The newcomer's path through networking, all in the browser as a project member: a network with a
subnet, a router with a gateway on the admin's external network, an instance launched on the
network, a floating IP allocated and associated on the instance's page. Real bridges, namespaces and
dnsmasq behind it (root)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.api.harness import BIN, Nube, Tenant, make_tenant
from tests.api.harness import openstack as cli
from tests.api.test_compute import REASON as COMPUTE_REASON
from tests.api.test_compute import wait_for
from tests.console.conftest import TIMEOUT_MS, login, screenshot

BOOT_MS = 300_000

if COMPUTE_REASON:
    print(f"tests/console/test_floating_ip.py skipped: {COMPUTE_REASON}")
pytestmark = pytest.mark.skipif(COMPUTE_REASON is not None, reason=COMPUTE_REASON or "")


@pytest.fixture(scope="module")
def external(nube: Nube) -> Iterator[str]:
    """What an admin (or the installer) provides: an external network with a subnet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    result = subprocess.run([str(BIN / "nube"), "image", "import-default", "--data-dir", str(nube.data_dir)],
                            env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    admin = nube.env()
    ext = cli(admin, "network", "create", "--external", "webext", "-f", "json")
    cli(admin, "subnet", "create", "--network", "webext", "--subnet-range", "198.51.100.0/24", "--no-dhcp",
        "--gateway", "198.51.100.1", "webext-sub")  # fmt: skip
    yield ext["id"]
    cli(admin, "network", "delete", "webext", check=False)


@pytest.fixture(scope="module")
def tenant(nube: Nube, external: str) -> Iterator[Tenant]:
    """Torn down before `external`: the router's gateway must go before the external network."""
    t = make_tenant(nube, "fip")
    yield t
    env = t.env(nube)
    for server in cli(env, "server", "list", "-f", "json"):
        subprocess.run([str(BIN / "openstack"), "server", "delete", "--wait", server["ID"]], env=env,
                       capture_output=True, timeout=180)  # fmt: skip
    for fip in cli(env, "floating", "ip", "list", "-f", "json"):
        cli(env, "floating", "ip", "delete", fip["ID"], check=False)
    cli(env, "router", "unset", "--external-gateway", "edge", check=False)
    cli(env, "router", "remove", "subnet", "edge", "appnet-subnet", check=False)
    cli(env, "router", "delete", "edge", check=False)
    cli(env, "network", "delete", "appnet", check=False)


@pytest.fixture(scope="module")
def page(browser: Browser, nube: Nube, tenant: Tenant, external: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    p = context.new_page()
    login(p, nube, tenant.name, "pw")
    yield p
    context.close()


def test_an_instance_on_a_routed_network_takes_a_floating_ip(
    page: Page, nube: Nube, tenant: Tenant, external: str
) -> None:
    page.goto(f"{nube.url}/console/networks")
    page.get_by_label("Network name").fill("appnet")
    page.get_by_label("Subnet CIDR (optional)").fill("10.31.0.0/24")
    page.get_by_role("button", name="Create network").click()
    expect(page.locator(".flash")).to_contain_text("Network appnet created")
    page.get_by_label("Router name").fill("edge")
    page.get_by_label("External gateway").select_option(label="webext")
    page.get_by_role("button", name="Create router").click()
    expect(page.locator(".flash")).to_contain_text("Router edge created")
    router = page.locator(".card", has_text="edge")
    router.get_by_label("Subnet").select_option(label="10.31.0.0/24")
    router.get_by_role("button", name="Add interface").click()
    expect(page.locator(".flash")).to_contain_text("Interface added")
    expect(page.locator(".card", has_text="edge")).to_contain_text("10.31.0.1")
    expect(page.locator("svg.topology")).to_contain_text("edge")

    page.goto(f"{nube.url}/console/instances/launch")
    page.get_by_label("Instance name").fill("app1")
    page.get_by_label("Image", exact=True).select_option(label="nube-tiny")
    flavor = (
        page.get_by_label("Flavor", exact=True)
        .locator("option", has_text="m1.nano")
        .get_attribute("value")
    )
    page.get_by_label("Flavor", exact=True).select_option(flavor)
    expect(page.get_by_label("appnet")).to_be_checked()
    page.get_by_role("button", name="Launch").click()
    expect(page.locator(".flash")).to_contain_text("Launching app1")
    server_id = re.search(r"/console/instances/([0-9a-f-]{36})$", page.url).group(1)  # type: ignore[union-attr]
    expect(page.locator("[data-field=status]")).to_have_text("ACTIVE", timeout=BOOT_MS)
    expect(page.get_by_role("cell", name=re.compile(r"appnet: 10\.31\.0\."))).to_be_visible()

    page.goto(f"{nube.url}/console/floating-ips")
    page.get_by_role("button", name="Allocate floating IP").click()
    expect(page.locator(".flash")).to_contain_text("allocated")
    address = re.search(r"Floating IP (\S+) allocated", page.locator(".flash").inner_text()).group(
        1
    )  # type: ignore[union-attr]

    page.goto(f"{nube.url}/console/instances/{server_id}")
    page.get_by_label("Floating IP", exact=True).select_option(label=address)
    page.get_by_role("button", name="Associate").click()
    expect(page.locator(".flash")).to_contain_text(f"Floating IP {address} associated")
    expect(page.get_by_text(f"{address} → 10.31.0.")).to_be_visible()
    screenshot(page, "instance-floating-ip")
    ports = requests.get(f"{nube.url}/networking/v2.0/ports?device_id={server_id}",
                         headers=tenant.headers(nube), timeout=10).json()["ports"]  # fmt: skip
    fips = requests.get(f"{nube.url}/networking/v2.0/floatingips",
                        headers=tenant.headers(nube), timeout=10).json()["floatingips"]  # fmt: skip
    assert [(f["floating_ip_address"], f["port_id"]) for f in fips] == [(address, ports[0]["id"])]
    page.goto(f"{nube.url}/console/networks")
    screenshot(page, "networks-topology")


def test_the_floating_ip_is_disassociated_then_released_and_the_interface_removed(
    page: Page, nube: Nube, tenant: Tenant
) -> None:
    net = f"{nube.url}/networking/v2.0"
    h = tenant.headers(nube)
    (fip,) = requests.get(f"{net}/floatingips", headers=h, timeout=10).json()["floatingips"]
    address = fip["floating_ip_address"]
    port = requests.get(f"{net}/ports/{fip['port_id']}", headers=h, timeout=10).json()["port"]
    server_id = port["device_id"]
    page.goto(f"{nube.url}/console/instances/{server_id}")
    page.locator("form", has_text=f"{address} →").get_by_role("button", name="Disassociate").click()
    expect(page.locator(".flash")).to_contain_text("Floating IP disassociated")
    expect(page.get_by_text(f"{address} →")).to_have_count(0)
    expect(page.get_by_label("Floating IP", exact=True)).to_contain_text(address)  # free again
    after = requests.get(f"{net}/floatingips/{fip['id']}", headers=h, timeout=10).json()
    assert after["floatingip"]["port_id"] is None and after["floatingip"]["status"] == "DOWN"

    page.goto(f"{nube.url}/console/floating-ips")
    page.once("dialog", lambda dialog: dialog.accept())  # "Release <address>?"
    page.get_by_role("row", name=re.compile(re.escape(address))).get_by_role(
        "button", name="Release"
    ).click()
    expect(page.locator(".flash")).to_contain_text("Floating IP released")
    expect(page.get_by_role("row", name=re.compile(re.escape(address)))).to_have_count(0)
    r = requests.get(f"{net}/floatingips/{fip['id']}", headers=h, timeout=10)
    assert r.status_code == 404, r.text

    # The instance goes first: its port on the subnet would keep the router's interface in use.
    requests.delete(f"{nube.url}/compute/v2.1/servers/{server_id}", headers=h, timeout=30)
    wait_for(lambda: requests.get(f"{nube.url}/compute/v2.1/servers/{server_id}", headers=h,
                                  timeout=10).status_code == 404, what="app1 deleted")  # fmt: skip
    (router,) = requests.get(f"{net}/routers?name=edge", headers=h, timeout=10).json()["routers"]
    page.goto(f"{nube.url}/console/networks")
    card = page.locator(f"#router-{router['id']}")
    expect(card).to_contain_text("10.31.0.1")
    card.locator("li", has_text="10.31.0.1").get_by_role("button", name="Remove").click()
    expect(page.locator(".flash")).to_contain_text("Interface removed")
    expect(page.locator(f"#router-{router['id']}")).not_to_contain_text("10.31.0.1")
    left = requests.get(f"{net}/ports?device_id={router['id']}&device_owner=network:router_interface",
                        headers=h, timeout=10).json()["ports"]  # fmt: skip
    assert left == []

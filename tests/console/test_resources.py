"""Networks, security groups and images in the browser, as a project member; another project sees
none of it."""

from __future__ import annotations

import functools
import http.server
import json
import re
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.api.harness import Nube, Tenant, make_tenant
from tests.console.conftest import TIMEOUT_MS, login, screenshot


@pytest.fixture(scope="module")
def tenant(nube: Nube) -> Tenant:
    return make_tenant(nube, "res")


@pytest.fixture(scope="module")
def member_page(browser: Browser, nube: Nube, tenant: Tenant) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    login(page, nube, tenant.name, "pw")
    yield page
    context.close()


@pytest.fixture
def other_page(browser: Browser, nube: Nube) -> Iterator[Page]:
    other = make_tenant(nube, "other")
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    login(page, nube, other.name, "pw")
    yield page
    context.close()


def test_a_network_with_a_subnet_appears_in_the_list_and_the_topology(
    member_page: Page, nube: Nube, tenant: Tenant
) -> None:
    page = member_page
    page.goto(f"{nube.url}/console/networks")
    screenshot(page, "networks-empty")
    page.get_by_label("Network name").fill("webnet")
    page.get_by_label("Subnet CIDR (optional)").fill("10.77.0.0/24")
    page.get_by_role("button", name="Create network").click()
    expect(page.locator(".flash")).to_contain_text("Network webnet created")
    expect(page.get_by_role("cell", name="webnet", exact=True)).to_be_visible()
    expect(page.get_by_text("10.77.0.0/24 (gateway 10.77.0.1)")).to_be_visible()
    expect(page.locator("svg.topology")).to_contain_text("webnet")
    screenshot(page, "networks")
    r = requests.get(f"{nube.url}/networking/v2.0/networks?name=webnet",
                     headers=tenant.headers(nube), timeout=10)  # fmt: skip
    assert [n["name"] for n in r.json()["networks"]] == ["webnet"]


def test_an_invalid_subnet_shows_the_apis_error(member_page: Page, nube: Nube) -> None:
    page = member_page
    page.goto(f"{nube.url}/console/networks")
    page.get_by_label("Network name").fill("badnet")
    page.get_by_label("Subnet CIDR (optional)").fill("10.300.0.0/24")
    page.get_by_role("button", name="Create network").click()
    expect(page.get_by_role("alert")).to_contain_text("not a valid IP subnet")
    expect(page.get_by_role("cell", name="badnet", exact=True)).to_have_count(0)


def test_another_project_does_not_see_the_network(other_page: Page, nube: Nube) -> None:
    other_page.goto(f"{nube.url}/console/networks")
    expect(other_page.get_by_role("heading", name="Networks", exact=True)).to_be_visible()
    expect(other_page.get_by_text("webnet")).to_have_count(0)


def test_a_security_group_rule_is_added(member_page: Page, nube: Nube, tenant: Tenant) -> None:
    page = member_page
    page.goto(f"{nube.url}/console/security-groups")
    page.get_by_label("Name", exact=True).fill("http")
    page.get_by_role("button", name="Create security group").click()
    expect(page.locator(".flash")).to_contain_text("Security group http created")
    group = page.locator("section.card", has=page.get_by_role("heading", name="http"))
    group.get_by_label("Port from").fill("80")
    group.get_by_role("button", name="Add rule").click()
    expect(page.locator(".flash")).to_contain_text("Rule added")
    group = page.locator("section.card", has=page.get_by_role("heading", name="http"))
    expect(group.get_by_role("row", name="ingress tcp (IPv4) 80 anywhere")).to_be_visible()
    screenshot(page, "security-groups")
    r = requests.get(f"{nube.url}/networking/v2.0/security-group-rules?port_range_min=80",
                     headers=tenant.headers(nube), timeout=10)  # fmt: skip
    assert any(rule["port_range_min"] == 80 for rule in r.json()["security_group_rules"])


def test_the_rule_then_the_group_are_deleted_and_another_project_never_saw_them(
    member_page: Page, other_page: Page, nube: Nube, tenant: Tenant
) -> None:
    page = member_page
    sg = f"{nube.url}/networking/v2.0/security-groups"
    (group,) = requests.get(f"{sg}?name=http", headers=tenant.headers(nube), timeout=10).json()[
        "security_groups"
    ]
    other_page.goto(f"{nube.url}/console/security-groups")
    expect(other_page.get_by_role("heading", name="default")).to_be_visible()
    expect(other_page.get_by_role("heading", name="http")).to_have_count(0)
    page.goto(f"{nube.url}/console/security-groups")
    card = page.locator("section.card", has=page.get_by_role("heading", name="http"))
    card.get_by_role("row", name="ingress tcp (IPv4) 80 anywhere").get_by_role(
        "button", name="Delete rule"
    ).click()
    expect(page.locator(".flash")).to_contain_text("Rule deleted")
    expect(card.get_by_role("row", name="ingress tcp (IPv4) 80 anywhere")).to_have_count(0)
    rules = requests.get(f"{sg}/{group['id']}", headers=tenant.headers(nube), timeout=10).json()
    assert not [
        r for r in rules["security_group"]["security_group_rules"] if r["port_range_min"] == 80
    ]
    page.once("dialog", lambda dialog: dialog.accept())  # "Delete security group http?"
    card.get_by_role("button", name="Delete group").click()
    expect(page.locator(".flash")).to_contain_text("Security group deleted")
    expect(page.get_by_role("heading", name="http")).to_have_count(0)
    r = requests.get(f"{sg}/{group['id']}", headers=tenant.headers(nube), timeout=10)
    assert r.status_code == 404, r.text


def test_an_image_uploads_with_a_progress_bar(
    member_page: Page, nube: Nube, tenant: Tenant, tmp_path: Path
) -> None:
    page = member_page
    data = tmp_path / "disk.raw"
    data.write_bytes(b"\0" * (24 << 20))
    page.goto(f"{nube.url}/console/images")
    upload = page.locator("form[data-upload]")
    upload.get_by_label("Name", exact=True).fill("uploaded-raw")
    upload.get_by_label("Image file").set_input_files(str(data))
    upload.get_by_label("Disk format").select_option("raw")
    # Record the bar's values as they change; sessionStorage survives the page's final redirect.
    page.evaluate("""() => {
        const bar = document.querySelector('progress');
        new MutationObserver(() => {
            const seen = JSON.parse(sessionStorage.getItem('progress') || '[]');
            seen.push([bar.value, bar.max]);
            sessionStorage.setItem('progress', JSON.stringify(seen));
        }).observe(bar, {attributes: true});
    }""")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".flash")).to_contain_text("Image uploaded-raw uploaded (25165824 bytes)")
    row = page.get_by_role("row", name="uploaded-raw")
    expect(row).to_contain_text("active")
    screenshot(page, "images")
    seen = json.loads(page.evaluate("sessionStorage.getItem('progress')") or "[]")
    assert seen and seen[-1][0] == seen[-1][1] == 24 << 20
    r = requests.get(f"{nube.url}/image/v2/images?name=uploaded-raw",
                     headers=tenant.headers(nube), timeout=10)  # fmt: skip
    (image,) = r.json()["images"]
    assert image["size"] == 24 << 20 and image["status"] == "active"


def test_another_project_does_not_see_the_private_image(other_page: Page, nube: Nube) -> None:
    other_page.goto(f"{nube.url}/console/images")
    expect(other_page.get_by_role("heading", name="Images")).to_be_visible()
    expect(other_page.get_by_text("uploaded-raw")).to_have_count(0)


def test_the_overview_meters_follow_usage_without_a_reload(
    member_page: Page, nube: Nube, tenant: Tenant
) -> None:
    page = member_page
    page.goto(f"{nube.url}/console/")
    volumes = page.locator(".meters li[data-label='Volumes'] .nums")
    expect(volumes).to_have_text(re.compile(r"^0 of \d+$"))
    page.evaluate("window.__notReloaded = true")
    r = requests.post(f"{nube.url}/volume/v3/{tenant.project_id}/volumes", json={"volume": {"size": 1, "name": "m"}},
                      headers=tenant.headers(nube), timeout=30)  # fmt: skip
    assert r.status_code == 202, r.text
    expect(volumes).to_have_text(re.compile(r"^1 of \d+$"), timeout=20_000)
    assert page.evaluate("window.__notReloaded === true")
    screenshot(page, "overview-usage")
    requests.delete(f"{nube.url}/volume/v3/{tenant.project_id}/volumes/{r.json()['volume']['id']}",
                    headers=tenant.headers(nube), timeout=30)  # fmt: skip


def test_the_overview_charts_draw_the_projects_samples_and_follow_a_new_volume(
    member_page: Page, other_page: Page, nube: Nube, tenant: Tenant
) -> None:
    page = member_page
    page.goto(f"{nube.url}/console/")
    chart = page.locator("svg.spark[data-series='Volumes']")
    expect(chart).to_have_attribute("data-last", "0")
    page.evaluate("window.__notReloaded = true")
    r = requests.post(f"{nube.url}/volume/v3/{tenant.project_id}/volumes",
                      json={"volume": {"size": 2, "name": "charted"}}, headers=tenant.headers(nube), timeout=30)  # fmt: skip
    assert r.status_code == 202, r.text
    expect(chart).to_have_attribute("data-last", "1", timeout=20_000)
    expect(page.locator("svg.spark[data-series='Volume storage']")).to_have_attribute(
        "data-last", "2"
    )
    points = chart.locator("polyline").get_attribute("points") or ""
    # A line: at least the sample before the volume and the one after.
    assert len(points.split()) >= 2, points
    assert page.evaluate("window.__notReloaded === true")
    screenshot(page, "overview-charts")
    # The samples behind the chart, as the page's script reads them: 0 first, 1 now.
    history = page.request.get(f"{nube.url}/console/usage").json()["history"]
    assert history["series"]["Volumes"][0] == 0 and history["series"]["Volumes"][-1] == 1
    assert len(history["t"]) == len(history["series"]["Volumes"])
    # Another project's charts are its own.
    other_page.goto(f"{nube.url}/console/")
    expect(other_page.locator("svg.spark[data-series='Volumes']")).to_have_attribute(
        "data-last", "0"
    )
    theirs = other_page.request.get(f"{nube.url}/console/usage").json()["history"]["series"]
    assert theirs["Volumes"] and set(theirs["Volumes"]) == {0}, theirs
    requests.delete(f"{nube.url}/volume/v3/{tenant.project_id}/volumes/{r.json()['volume']['id']}",
                    headers=tenant.headers(nube), timeout=30)  # fmt: skip


def test_a_volume_is_extended_and_snapshotted_then_deleted(
    member_page: Page, nube: Nube, tenant: Tenant
) -> None:
    page = member_page
    page.goto(f"{nube.url}/console/volumes")
    page.get_by_label("Name", exact=True).fill("grow")
    page.get_by_role("button", name="Create volume").click()
    row = page.get_by_role("row", name=re.compile(r"^grow "))
    expect(row.locator("[data-field=status]")).to_have_text("available")
    row.get_by_label("New size of grow in GiB").fill("2")
    row.get_by_role("button", name="Extend").click()
    expect(page.locator(".flash")).to_contain_text("Extending the volume")
    page.reload()
    expect(page.get_by_role("row", name=re.compile(r"^grow "))).to_contain_text("2 GiB")
    page.get_by_role("row", name=re.compile(r"^grow ")).get_by_role(
        "button", name="Snapshot"
    ).click()
    expect(page.locator(".flash")).to_contain_text("Taking snapshot grow-snap")
    snaps = page.locator("section[aria-labelledby=snaps-h]")
    for _ in range(60):
        if "available" in snaps.inner_text():
            break
        page.wait_for_timeout(1000)
        page.reload()
    expect(snaps.get_by_role("row", name=re.compile("grow-snap"))).to_contain_text("available")
    screenshot(page, "volumes-snapshot")
    page.once("dialog", lambda dialog: dialog.accept())
    snaps.get_by_role("button", name="Delete").click()
    expect(page.locator(".flash")).to_contain_text("Deleting the snapshot")
    for _ in range(60):
        if not page.locator("section[aria-labelledby=snaps-h]").count():
            break
        page.wait_for_timeout(1000)
        page.reload()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("row", name=re.compile(r"^grow ")).get_by_role("button", name="Delete").click()
    expect(page.locator(".flash")).to_contain_text("Deleting the volume")
    r = requests.get(f"{nube.url}/volume/v3/{tenant.project_id}/volumes/detail?name=grow",
                     headers=tenant.headers(nube), timeout=30)  # fmt: skip
    assert all(v["status"] in ("deleting",) for v in r.json()["volumes"])


def test_an_image_is_renamed_made_public_by_nobody_but_an_admin_and_deleted(
    member_page: Page, nube: Nube, tenant: Tenant
) -> None:
    page = member_page
    page.goto(f"{nube.url}/console/images")
    row = page.get_by_role("row", name=re.compile("uploaded-raw"))
    row.locator("summary").click()
    row.get_by_label("Name").fill("renamed-raw")
    row.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Image renamed-raw saved")
    row = page.get_by_role("row", name=re.compile("renamed-raw"))
    row.locator("summary").click()
    row.get_by_label("Visibility").select_option("public")
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_be_visible()  # Glance's policy: publicizing is for admins
    row = page.get_by_role("row", name=re.compile("renamed-raw"))
    expect(row).to_contain_text("private")
    row.locator("summary").click()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(page.locator(".flash")).to_contain_text("Image renamed-raw deleted")
    r = requests.get(
        f"{nube.url}/image/v2/images?name=renamed-raw", headers=tenant.headers(nube), timeout=10
    )
    assert r.json()["images"] == []


def test_an_image_is_created_from_a_url(
    member_page: Page, nube: Nube, tenant: Tenant, tmp_path: Path
) -> None:
    (tmp_path / "disk.raw").write_bytes(b"\0" * (1 << 20))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/disk.raw"
        page = member_page
        page.goto(f"{nube.url}/console/images")
        by_url = page.locator("form", has=page.get_by_label("URL (http or https)"))
        by_url.get_by_label("Name", exact=True).fill("from-url")
        by_url.get_by_label("URL (http or https)").fill(url)
        by_url.get_by_label("Disk format").select_option("raw")
        page.get_by_role("button", name="Create", exact=True).click()
        expect(page.locator(".flash")).to_contain_text("Importing image from-url from its URL")
        for _ in range(60):
            if "active" in page.get_by_role("row", name=re.compile("from-url")).inner_text():
                break
            page.wait_for_timeout(1000)
            page.reload()
        httpd.shutdown()
    expect(page.get_by_role("row", name=re.compile("from-url"))).to_contain_text("active")
    r = requests.get(
        f"{nube.url}/image/v2/images?name=from-url", headers=tenant.headers(nube), timeout=10
    )
    assert r.json()["images"][0]["size"] == 1 << 20


def test_a_public_key_is_imported(
    member_page: Page, nube: Nube, tenant: Tenant, tmp_path: Path
) -> None:
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    page = member_page
    page.goto(f"{nube.url}/console/keypairs")
    page.get_by_label("Key pair name").fill("mine")
    page.get_by_label("Public key to import").fill(key.with_suffix(".pub").read_text())
    page.get_by_role("button", name="Create key pair").click()
    expect(page.locator(".flash")).to_contain_text("Key pair mine imported")
    r = requests.get(
        f"{nube.url}/compute/v2.1/os-keypairs/mine", headers=tenant.headers(nube), timeout=10
    )
    assert (
        r.json()["keypair"]["public_key"].split()[1]
        == key.with_suffix(".pub").read_text().split()[1]
    )


def test_an_image_is_shared_with_another_project(
    member_page: Page, nube: Nube, tenant: Tenant, tmp_path: Path
) -> None:
    friend = make_tenant(nube, "friend")
    page = member_page
    data = tmp_path / "small.raw"
    data.write_bytes(b"\0" * (1 << 20))
    page.goto(f"{nube.url}/console/images")
    upload = page.locator("form[data-upload]")
    upload.get_by_label("Name", exact=True).fill("to-share")
    upload.get_by_label("Image file").set_input_files(str(data))
    upload.get_by_label("Disk format").select_option("raw")
    upload.get_by_label("Visibility").select_option("shared")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".flash")).to_contain_text("Image to-share uploaded")
    row = page.get_by_role("row", name=re.compile("to-share"))
    row.locator("summary").click()
    row.get_by_label("Share with project ID").fill(friend.project_id)
    row.get_by_role("button", name="Share").click()
    expect(page.locator(".flash")).to_contain_text(f"Shared with project {friend.project_id}")
    image_id = requests.get(f"{nube.url}/image/v2/images?name=to-share", headers=tenant.headers(nube),
                            timeout=10).json()["images"][0]["id"]  # fmt: skip
    r = requests.get(
        f"{nube.url}/image/v2/images/{image_id}", headers=friend.headers(nube), timeout=10
    )
    assert r.status_code == 200 and r.json()["name"] == "to-share"

"""Key pairs, the object store with EC2 credentials, API access files, and identity admin: each
checked from the browser and then with the real client that would use it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config as BotoConfig
from playwright.sync_api import Browser, Page, expect

from tests.api.harness import ADMIN_PASSWORD, BIN, Nube, Tenant, make_tenant
from tests.console.conftest import TIMEOUT_MS, login, screenshot


@pytest.fixture(scope="module")
def tenant(nube: Nube) -> Tenant:
    return make_tenant(nube, "acc")


@pytest.fixture(scope="module")
def member_page(browser: Browser, nube: Nube, tenant: Tenant) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    login(page, nube, tenant.name, "pw")
    yield page
    context.close()


def test_a_generated_key_pairs_private_key_is_downloaded_once(
    member_page: Page, nube: Nube, tenant: Tenant, tmp_path: Path
) -> None:
    page = member_page
    page.goto(f"{nube.url}/console/keypairs")
    page.get_by_label("Key pair name").fill("laptop")
    page.get_by_role("button", name="Create key pair").click()
    with page.expect_download() as info:
        page.get_by_role("link", name="Download laptop.pem").click()
    path = tmp_path / "laptop.pem"
    info.value.save_as(path)
    assert path.read_text().startswith("-----BEGIN")
    page.goto(f"{nube.url}/console/keypairs")
    expect(page.get_by_role("cell", name="laptop", exact=True)).to_be_visible()
    expect(page.get_by_text("BEGIN")).to_have_count(0)
    screenshot(page, "keypairs")
    path.chmod(0o600)
    public = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True)
    r = requests.get(f"{nube.url}/compute/v2.1/os-keypairs/laptop", headers=tenant.headers(nube),
                     timeout=10)  # fmt: skip
    assert r.json()["keypair"]["public_key"].split()[:2] == public.stdout.split()[:2]


def test_an_object_uploads_with_progress_and_ec2_credentials_work_with_boto3(
    member_page: Page, nube: Nube, tmp_path: Path
) -> None:
    page = member_page
    page.goto(f"{nube.url}/console/objects")
    page.get_by_label("Bucket name").fill("webfiles")
    page.get_by_role("button", name="Create bucket").click()
    expect(page.locator(".flash")).to_contain_text("Bucket webfiles created")
    data = tmp_path / "report.bin"
    data.write_bytes(os.urandom(3 << 20))
    page.get_by_label("File", exact=True).set_input_files(str(data))
    page.get_by_label("Object name (defaults to the file's name)").fill("docs/report.bin")
    page.evaluate("""() => {
        const bar = document.querySelector('progress');
        new MutationObserver(() => sessionStorage.setItem('last', JSON.stringify([bar.value, bar.max])))
            .observe(bar, {attributes: true});
    }""")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".flash")).to_contain_text("Uploaded docs/report.bin (3145728 bytes)")
    assert json.loads(page.evaluate("sessionStorage.getItem('last')")) == [3 << 20, 3 << 20]
    page.get_by_role("link", name="docs/").click()
    with page.expect_download() as info:
        page.get_by_role("link", name="Download").click()
    info.value.save_as(tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data.read_bytes()
    screenshot(page, "objects")

    page.goto(f"{nube.url}/console/objects")
    page.get_by_role("button", name="Create EC2 credentials").click()
    access = page.locator("#ec2-access").inner_text()
    secret = page.locator("#ec2-secret").inner_text()
    s3 = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{nube.s3_port}", region_name="RegionOne",
        aws_access_key_id=access, aws_secret_access_key=secret,
        config=BotoConfig(s3={"addressing_style": "path"}),
    )  # fmt: skip
    body = s3.get_object(Bucket="webfiles", Key="docs/report.bin")["Body"].read()
    assert body == data.read_bytes()


def test_another_project_cannot_browse_the_bucket(browser: Browser, nube: Nube) -> None:
    other = make_tenant(nube, "nosy")
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    login(page, nube, other.name, "pw")
    page.goto(f"{nube.url}/console/objects/webfiles")
    expect(page.get_by_role("alert")).to_contain_text("Access Denied")
    expect(page.get_by_text("report.bin")).to_have_count(0)
    context.close()


def test_the_downloaded_clouds_yaml_works_with_the_openstack_cli(
    member_page: Page, nube: Nube, tenant: Tenant, tmp_path: Path
) -> None:
    page = member_page
    page.goto(f"{nube.url}/console/access")
    expect(page.get_by_role("cell", name=f"{nube.url}/compute/v2.1")).to_be_visible()
    screenshot(page, "api-access")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download clouds.yaml").click()
    path = tmp_path / "clouds.yaml"
    info.value.save_as(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(path)
    result = subprocess.run(
        [str(BIN / "openstack"), "--os-cloud", "nube", "--os-password", "pw", "keypair", "list", "-f", "json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "laptop" in [k["Name"] for k in json.loads(result.stdout)]


def test_a_member_cannot_open_the_admin_pages(member_page: Page, nube: Nube) -> None:
    page = member_page
    page.goto(f"{nube.url}/console/")
    expect(page.get_by_role("link", name="Identity admin")).to_have_count(0)
    response = page.goto(f"{nube.url}/console/admin")
    assert response is not None and response.status == 403
    expect(page.get_by_role("alert")).to_contain_text("Only an admin")


def test_an_admin_makes_a_project_and_user_that_can_log_in(browser: Browser, nube: Nube) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    login(page, nube, "admin", ADMIN_PASSWORD)
    page.get_by_role("link", name="Identity admin").click()
    page.get_by_label("Project name").fill("team-blue")
    page.get_by_role("button", name="Create project").click()
    expect(page.locator(".flash")).to_contain_text("Project team-blue created")
    page.get_by_label("User name").fill("blue-user")
    page.get_by_label("Password").fill("blue-pw")
    page.get_by_label("Primary project").select_option(label="team-blue")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator(".flash")).to_contain_text("User blue-user created")
    screenshot(page, "identity-admin")
    page.get_by_role("row", name=re.compile("team-blue")).get_by_role("link", name="Quotas").click()
    page.get_by_label("Instances").fill("2")
    page.get_by_role("button", name="Save quotas").click()
    expect(page.locator(".flash")).to_contain_text("Quotas saved")
    context.close()

    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    login(page, nube, "blue-user", "blue-pw")
    expect(page.get_by_role("heading", name="Overview of team-blue")).to_be_visible()
    expect(page.locator(".meters li", has_text="Instances")).to_contain_text("0 of 2")
    context.close()


def test_the_downloaded_openrc_works_with_the_openstack_cli(
    member_page: Page, nube: Nube, tenant: Tenant, tmp_path: Path
) -> None:
    page = member_page
    page.goto(f"{nube.url}/console/access")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download openrc").click()
    path = tmp_path / "openrc.sh"
    info.value.save_as(path)
    assert f"export OS_PROJECT_ID='{tenant.project_id}'" in path.read_text()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    # The file asks for the password on stdin, as it would on a terminal.
    result = subprocess.run(
        ["bash", "-c", f". {path} && openstack project show -f json \"$OS_PROJECT_ID\""],
        input="pw\n", env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == tenant.name


def scoped_token(nube: Nube, user: str, project_id: str) -> requests.Response:
    auth = {"identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"name": "Default"}, "password": "pw"}}},
            "scope": {"project": {"id": project_id}}}  # fmt: skip
    return requests.post(f"{nube.auth_url}/v3/auth/tokens", json={"auth": auth}, timeout=10)


def admin_page(browser: Browser, nube: Nube) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    login(page, nube, "admin", ADMIN_PASSWORD)
    page.goto(f"{nube.url}/console/admin")
    return page


def test_an_admin_disables_enables_and_deletes_a_project(browser: Browser, nube: Nube) -> None:
    victim = make_tenant(nube, "gone")
    admin = {"X-Auth-Token": nube.token()}
    project_url = f"{nube.auth_url}/v3/projects/{victim.project_id}"
    page = admin_page(browser, nube)
    row = page.locator("section[aria-labelledby=projects-h] tr", has_text=victim.name)
    expect(row.locator("td").nth(2)).to_have_text("yes")
    row.get_by_role("button", name="Disable").click()
    expect(page.locator(".flash")).to_contain_text("Project disabled")
    expect(row.locator("td").nth(2)).to_have_text("no")
    assert (
        requests.get(project_url, headers=admin, timeout=10).json()["project"]["enabled"] is False
    )
    # Its member can no longer get a token scoped to it.
    assert scoped_token(nube, victim.name, victim.project_id).status_code == 401
    row.get_by_role("button", name="Enable").click()
    expect(page.locator(".flash")).to_contain_text("Project enabled")
    expect(row.locator("td").nth(2)).to_have_text("yes")
    assert requests.get(project_url, headers=admin, timeout=10).json()["project"]["enabled"] is True
    page.once("dialog", lambda dialog: dialog.accept())  # "Delete project ...?"
    row.get_by_role("button", name="Delete").click()
    expect(page.locator(".flash")).to_contain_text("Project deleted")
    expect(row).to_have_count(0)
    assert requests.get(project_url, headers=admin, timeout=10).status_code == 404
    page.context.close()


def test_an_admin_grants_and_revokes_a_role(browser: Browser, nube: Nube) -> None:
    who = make_tenant(nube, "grant")
    where = make_tenant(nube, "target")
    admin = {"X-Auth-Token": nube.token()}
    url = (f"{nube.auth_url}/v3/role_assignments?user.id={who.user_id}"
           f"&scope.project.id={where.project_id}&include_names=1")  # fmt: skip
    page = admin_page(browser, nube)
    page.get_by_label("User", exact=True).select_option(label=who.name)
    page.get_by_label("Role", exact=True).select_option(label="member")
    page.get_by_label("On project").select_option(label=where.name)
    page.get_by_role("button", name="Grant role").click()
    expect(page.locator(".flash")).to_contain_text("Role granted")
    grants = page.locator("section[aria-labelledby=roles-h] tr", has_text=who.name).filter(
        has_text=where.name
    )
    expect(grants).to_have_count(1)
    expect(grants.locator("td").nth(1)).to_have_text("member")
    roles = requests.get(url, headers=admin, timeout=10).json()["role_assignments"]
    assert [a["role"]["name"] for a in roles] == ["member"]
    assert scoped_token(nube, who.name, where.project_id).status_code == 201
    page.once("dialog", lambda dialog: dialog.accept())  # "Revoke member of ...?"
    grants.get_by_role("button", name="Revoke").click()
    expect(page.locator(".flash")).to_contain_text("Role revoked")
    expect(grants).to_have_count(0)
    assert requests.get(url, headers=admin, timeout=10).json()["role_assignments"] == []
    assert scoped_token(nube, who.name, where.project_id).status_code == 401
    page.context.close()

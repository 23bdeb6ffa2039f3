"""Login, the session cookie, logout revoking the token, CSRF, and the project switcher."""

from __future__ import annotations

import functools
import http.server
import re
import socketserver
import threading
from pathlib import Path

import requests
from playwright.sync_api import BrowserContext, Page, expect

from tests.api.harness import Nube, make_tenant
from tests.console.conftest import login, screenshot


def _session_cookie(context: BrowserContext) -> dict:
    return next(c for c in context.cookies() if c["name"] == "nube_session")


def _api_status(nube: Nube, token: str) -> int:
    return requests.get(
        f"{nube.url}/identity/v3/auth/tokens",
        headers={"X-Auth-Token": token, "X-Subject-Token": token},
        timeout=10,
    ).status_code


def test_root_sends_a_browser_to_the_login_page(nube: Nube, page: Page) -> None:
    page.goto(f"{nube.url}/")
    expect(page).to_have_url(re.compile(r"/console/login"))
    expect(page.get_by_label("User name")).to_be_visible()
    screenshot(page, "login")


def test_root_still_answers_json_to_api_clients(nube: Nube) -> None:
    r = requests.get(f"{nube.url}/", headers={"Accept": "application/json"}, timeout=10)
    assert r.status_code == 200
    assert "identity" in r.json()["apis"]


def test_wrong_password_is_refused_with_a_message(nube: Nube, page: Page) -> None:
    page.goto(f"{nube.url}/console/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password")
    assert not [c for c in page.context.cookies() if c["name"] == "nube_session"]


def test_login_sets_an_httponly_samesite_cookie(nube: Nube, page: Page) -> None:
    login(page, nube)
    cookie = _session_cookie(page.context)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie").find("nube_session") == -1
    expect(page.get_by_role("heading", name="Overview of admin")).to_be_visible()
    screenshot(page, "overview")


def test_logout_revokes_the_sessions_tokens(nube: Nube, page: Page) -> None:
    login(page, nube)
    root, scoped = _session_cookie(page.context)["value"].strip('"').split("|")
    assert _api_status(nube, scoped) == 200
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/console/login"))
    assert _api_status(nube, scoped) == 404 or _api_status(nube, scoped) == 401
    assert _api_status(nube, root) in (401, 404)
    page.goto(f"{nube.url}/console/instances")
    expect(page).to_have_url(re.compile(r"/console/login"))


def test_a_forged_cross_site_post_is_refused(nube: Nube, page: Page) -> None:
    login(page, nube)
    cookie = _session_cookie(page.context)["value"]
    jar = {"nube_session": cookie}
    forged = {"name": "forged", "flavor_id": "1", "image_id": "x", "count": "1"}
    without_token = requests.post(f"{nube.url}/console/instances/launch", data=forged,
                                  cookies=jar, allow_redirects=False, timeout=10)  # fmt: skip
    assert without_token.status_code == 403
    page.goto(f"{nube.url}/console/instances/launch")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    other_origin = requests.post(
        f"{nube.url}/console/instances/launch", data={**forged, "csrf": csrf}, cookies=jar,
        headers={"Origin": "http://evil.example"}, allow_redirects=False, timeout=10,
    )  # fmt: skip
    assert other_origin.status_code == 403
    page.goto(f"{nube.url}/console/instances")
    expect(page.get_by_text("forged")).to_have_count(0)


def test_a_cross_site_form_in_the_browser_changes_nothing(
    nube: Nube, page: Page, tmp_path: Path
) -> None:
    """A page on another site (localhost is not 127.0.0.1) auto-posts a form to the console while
    the user is logged in: the SameSite cookie stays home and the missing CSRF token is refused."""
    login(page, nube)
    (tmp_path / "evil.html").write_text(
        f'<form id="f" method="post" action="{nube.url}/console/networks">'
        '<input name="name" value="forged-net"></form><script>f.submit()</script>'
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        page.goto(f"http://localhost:{httpd.server_address[1]}/evil.html")
        page.wait_for_url(re.compile(r"/console/"))
        httpd.shutdown()
    r = requests.get(f"{nube.url}/networking/v2.0/networks?name=forged-net",
                     headers={"X-Auth-Token": nube.token()}, timeout=10)  # fmt: skip
    assert r.json()["networks"] == []


def test_switching_projects_shows_the_other_projects_resources(nube: Nube, page: Page) -> None:
    alice = make_tenant(nube, "sw")
    admin = {"X-Auth-Token": nube.token()}
    second = requests.post(f"{nube.url}/identity/v3/projects", json={"project": {"name": alice.name + "-b"}},
                           headers=admin, timeout=10).json()["project"]  # fmt: skip
    member = requests.get(f"{nube.url}/identity/v3/roles?name=member", headers=admin, timeout=10)
    role_id = member.json()["roles"][0]["id"]
    r = requests.put(f"{nube.url}/identity/v3/projects/{second['id']}/users/{alice.user_id}/roles/{role_id}",
                     headers=admin, timeout=10)  # fmt: skip
    assert r.status_code == 204
    token = nube.token(alice.name, "pw", alice.name)
    r = requests.post(f"{nube.url}/networking/v2.0/networks", json={"network": {"name": "only-in-a"}},
                      headers={"X-Auth-Token": token}, timeout=30)  # fmt: skip
    assert r.status_code == 201, r.text

    login(page, nube, alice.name, "pw")
    switcher = page.get_by_label("Project")
    expect(switcher).to_have_value(alice.project_id)
    page.goto(f"{nube.url}/console/instances/launch")
    expect(page.get_by_label("only-in-a")).to_have_count(1)
    page.get_by_label("Project").select_option(second["id"])
    expect(page.locator(".flash")).to_contain_text(second["name"])
    expect(page.get_by_label("Project")).to_have_value(second["id"])
    expect(page).to_have_url(re.compile(r"/console/instances$"))  # the same section, new project
    screenshot(page, "project-switched")
    page.goto(f"{nube.url}/console/instances/launch")
    expect(page.get_by_role("heading", name="Launch instance")).to_be_visible()
    expect(page.get_by_label("only-in-a")).to_have_count(0)


def test_a_reader_sees_pages_without_write_actions_and_the_service_refuses_writes(
    nube: Nube, page: Page
) -> None:
    reader = make_tenant(nube, "ro", role="reader")
    login(page, nube, reader.name, "pw")
    page.goto(f"{nube.url}/console/instances")
    expect(page.get_by_text("Your role here is read-only")).to_be_visible()
    expect(page.get_by_role("link", name="Launch instance")).to_have_count(0)
    page.goto(f"{nube.url}/console/networks")
    expect(page.get_by_role("button", name="Create network")).to_have_count(0)
    # The wizard is still reachable by URL; the service layer is what says no.
    page.goto(f"{nube.url}/console/instances/launch")
    page.get_by_label("Instance name").fill("nope")
    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_role("alert")).to_contain_text("member role")

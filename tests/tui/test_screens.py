"""Logging in, the list screens, volumes, buckets and the admin-only section, through the Pilot."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import requests
from textual.widgets import Select, Static

from tests.api.harness import Nube, Tenant, make_tenant
from tests.tui.conftest import Notes, creds_of, get, logged_in, wait_until
from tui.app import NubeApp
from tui.credentials import Credentials, find_credentials
from tui.screens.buckets import BucketsScreen
from tui.widgets.details import DetailsDialog
from tui.widgets.nav import SectionBar
from tui.widgets.table import ResourceTable

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def tenant(nube: Nube) -> Tenant:
    return make_tenant(nube, "tui")


@pytest.fixture(scope="module")
def other(nube: Nube) -> Tenant:
    return make_tenant(nube, "tuio")


def names(table: ResourceTable) -> set[str]:
    return {str(r.get("name")) for r in table.rows_by_key.values()}


async def test_logging_in_with_the_form_lists_the_projects_servers(
    nube: Nube, tenant: Tenant
) -> None:
    app = NubeApp(Credentials(nube.auth_url, "", ""), workdir=Path("/nonexistent"))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until("the login form", lambda: app.screen.id == "login")
        await pilot.click("#username")
        await pilot.press(*tenant.name)
        await pilot.click("#password")
        await pilot.press("p", "w")
        await pilot.click("#project_name")
        await pilot.press(*tenant.name, "enter")
        await logged_in(app)
        assert app.session is not None and app.session.project is not None
        assert app.session.project.id == tenant.project_id
        await pilot.press("2")
        await wait_until("servers screen", lambda: app.current_mode == "servers")
        table = app.screen.query_one("#servers", ResourceTable)
        assert table.columns and table.row_count == 0


async def test_a_wrong_password_is_shown_with_keystones_message(nube: Nube, tenant: Tenant) -> None:
    notes = Notes()
    app = NubeApp(Credentials(nube.auth_url, tenant.name, "wrong", tenant.name))
    async with app.run_test(message_hook=notes.hook) as pilot:
        await wait_until("an error", notes.errors)
        await wait_until("the login form", lambda: app.screen.id == "login")
        await pilot.pause(0.5)
        assert app.session is None
        assert app.screen.query_one("#username").value == tenant.name  # type: ignore[attr-defined]
    assert "authentication" in notes.errors()[0].lower(), notes.errors()


async def test_a_member_does_not_get_the_identity_section(nube: Nube, tenant: Tenant) -> None:
    app = NubeApp(creds_of(nube, tenant))
    async with app.run_test() as pilot:
        await logged_in(app)
        assert not app.session.is_admin  # type: ignore[union-attr]
        await pilot.press("7")
        await pilot.pause(0.5)
        assert app.current_mode == "overview"
        assert "Identity" not in str(app.screen.query_one(SectionBar).render())


async def test_an_admin_sees_projects_and_users(nube: Nube, tenant: Tenant) -> None:
    app = NubeApp(creds_of(nube))
    async with app.run_test() as pilot:
        await logged_in(app)
        assert "Identity" in str(app.screen.query_one(SectionBar).render())
        await pilot.press("7")
        await wait_until("identity screen", lambda: app.current_mode == "identity")
        projects = app.screen.query_one("#projects", ResourceTable)
        await wait_until("the tenant's project", lambda: tenant.name in names(projects))
        users = app.screen.query_one("#users", ResourceTable)
        await wait_until("the tenant's user", lambda: tenant.name in names(users))


async def test_creating_a_volume_from_the_dialog(nube: Nube, tenant: Tenant, other: Tenant) -> None:
    notes = Notes()
    app = NubeApp(creds_of(nube, tenant))
    async with app.run_test(size=(100, 30), message_hook=notes.hook) as pilot:
        await logged_in(app)
        await pilot.press("4")
        await wait_until("volumes screen", lambda: app.screen.query("#volumes"))
        table = app.screen.query_one("#volumes", ResourceTable)
        await pilot.press("n")
        await wait_until("the dialog", lambda: app.screen.query("#size"))
        await pilot.click("#name")
        await pilot.press(*"tui-vol1")
        await pilot.click("#size")
        await pilot.press("home", "ctrl+k", "2", "enter")

        def available() -> bool:
            rows = [r for r in table.rows_by_key.values() if r["name"] == "tui-vol1"]
            return bool(rows) and rows[0]["status"] == "available" and rows[0]["size"] == 2

        await wait_until("tui-vol1 available", available, limit=120)
        assert not notes.errors()
        volume_id = next(k for k, r in table.rows_by_key.items() if r["name"] == "tui-vol1")
        table.focus()
        table.select_key(volume_id)
        await pilot.press("enter")
        await wait_until("the details", lambda: isinstance(app.screen, DetailsDialog))
        fields = str(app.screen.query_one("#fields", Static).render())
        assert volume_id in fields and "__DEFAULT__" in fields
        await pilot.press("escape")
        await wait_until("back", lambda: not isinstance(app.screen, DetailsDialog))
    url = f"{nube.url}/volume/v3/volumes/{volume_id}"
    assert (await get(url, other.headers(nube)))[0] == 404
    assert volume_id not in (await get(f"{nube.url}/volume/v3/volumes", other.headers(nube)))[1]


async def test_an_api_refusal_is_a_notification_with_the_apis_message(
    nube: Nube, tenant: Tenant
) -> None:
    notes = Notes()
    app = NubeApp(creds_of(nube, tenant))
    async with app.run_test(size=(100, 30), message_hook=notes.hook) as pilot:
        await logged_in(app)
        await pilot.press("4", "n")
        await wait_until("the dialog", lambda: app.screen.query("#size"))
        await pilot.click("#name")
        await pilot.press(*"too-big")
        await pilot.click("#size")
        await pilot.press("home", "ctrl+k", *"100000", "enter")
        await wait_until("an error", notes.errors)
    assert "size must be between 1 and" in notes.errors()[0], notes.errors()


async def test_uploading_and_downloading_an_object(
    nube: Nube, tenant: Tenant, other: Tenant, tmp_path: Path
) -> None:
    source = tmp_path / "hello.bin"
    payload = bytes(range(256)) * 12_000  # 3 MB: several progress steps
    source.write_bytes(payload)
    notes = Notes()
    app = NubeApp(creds_of(nube, tenant), workdir=tmp_path)
    async with app.run_test(size=(100, 30), message_hook=notes.hook) as pilot:
        await logged_in(app)
        await pilot.press("6")
        await wait_until("buckets screen", lambda: isinstance(app.screen, BucketsScreen))
        screen = app.screen
        assert isinstance(screen, BucketsScreen)
        await pilot.press("n")
        await wait_until("the dialog", lambda: app.screen.query("#name"))
        await pilot.press(*"tui-bucket", "enter")
        buckets = screen.query_one("#buckets", ResourceTable)
        await wait_until("the bucket", lambda: "tui-bucket" in names(buckets))
        buckets.focus()
        buckets.select_key("tui-bucket")
        await pilot.press("enter")
        await wait_until("objects tab", lambda: screen.bucket == "tui-bucket")
        await pilot.press("u")
        await wait_until("the upload dialog", lambda: app.screen.query("#path"))
        await pilot.click("#path")
        await pilot.press(*"hello.bin", "enter")
        objects = screen.query_one("#objects", ResourceTable)
        await wait_until("the object", lambda: "hello.bin" in names(objects), limit=60)
        bar = screen.query_one("#progress")
        assert bar.percentage == 1.0  # type: ignore[attr-defined]
        objects.focus()
        objects.select_key("hello.bin")
        await pilot.press("w")
        await wait_until("the download dialog", lambda: app.screen.query("#path"))
        await pilot.click("#path")
        await pilot.press("home", "ctrl+k", *"copy.bin", "enter")
        await wait_until("the download", lambda: (tmp_path / "copy.bin").exists(), limit=60)
        assert not notes.errors(), notes.errors()
    assert (tmp_path / "copy.bin").read_bytes() == payload
    base = f"{nube.url}/object-store/v1/AUTH_{other.project_id}"
    assert "tui-bucket" not in (await get(base, other.headers(nube)))[1]
    stolen = f"{nube.url}/object-store/v1/AUTH_{tenant.project_id}/tui-bucket/hello.bin"
    assert (await get(stolen, other.headers(nube)))[0] == 403


async def test_switching_project_rescopes_the_session(
    nube: Nube, tenant: Tenant, other: Tenant
) -> None:
    await grant_member(nube, tenant, other)
    app = NubeApp(creds_of(nube, tenant))
    async with app.run_test(size=(100, 30)) as pilot:
        await logged_in(app)
        await pilot.press("p")
        await wait_until("the project dialog", lambda: app.screen.query("#project"))
        select = app.screen.query_one("#project", Select)
        select.value = other.project_id
        await pilot.click("#submit")
        await wait_until("the new scope", lambda: app.session.project.id == other.project_id)  # type: ignore[union-attr]
        await wait_until("the title", lambda: other.name in app.sub_title)


async def grant_member(nube: Nube, tenant: Tenant, other: Tenant) -> None:
    admin = {"X-Auth-Token": nube.token()}
    roles = await get(f"{nube.auth_url}/v3/roles?name=member", admin)
    role_id = json.loads(roles[1])["roles"][0]["id"]
    url = f"{nube.auth_url}/v3/projects/{other.project_id}/users/{tenant.user_id}/roles/{role_id}"
    await asyncio.to_thread(lambda: requests.put(url, headers=admin, timeout=10).raise_for_status())


async def test_slash_filters_the_rows_and_escape_clears_it(nube: Nube, tenant: Tenant) -> None:
    app = NubeApp(creds_of(nube))
    async with app.run_test() as pilot:
        await logged_in(app)
        await pilot.press("7")
        await wait_until("identity screen", lambda: app.screen.query("#projects"))
        projects = app.screen.query_one("#projects", ResourceTable)
        await wait_until("several projects", lambda: {"admin", tenant.name} <= names(projects))
        await pilot.press("slash", *tenant.name)
        await wait_until("only the match", lambda: names(projects) == {tenant.name})
        await pilot.press("escape")
        await wait_until("all again", lambda: {"admin", tenant.name} <= names(projects))


async def test_the_clouds_yaml_nube_writes_logs_the_admin_in(nube: Nube) -> None:
    env = {"OS_CLIENT_CONFIG_FILE": str(nube.data_dir / "clouds.yaml"), "HOME": "/nonexistent"}
    creds = find_credentials("nube", env)
    assert creds is not None and creds.complete
    app = NubeApp(creds)
    async with app.run_test():
        await logged_in(app)
        assert app.session is not None and app.session.is_admin
        assert app.session.project is not None and app.session.project.name == "admin"

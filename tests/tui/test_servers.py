"""Servers through the TUI on a real nube-tiny guest (libvirt/QEMU, TCG): launch from the dialog,
see it turn ACTIVE, follow its console log, stop it. One guest for the module."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from textual.widgets import DataTable, Log

from tests.api.harness import BIN, Nube, Tenant, make_tenant
from tests.tui.conftest import Notes, creds_of, get, logged_in, wait_until
from tui.app import NubeApp
from tui.screens.console import ConsoleScreen
from tui.screens.servers import ServersScreen
from tui.screens.volumes import VolumesScreen
from tui.widgets.dialogs import FormDialog
from tui.widgets.table import ResourceTable

CACHE = Path(os.environ.get("NUBE_IMAGE_CACHE", "/var/cache/nube/images"))
BOOT = 600.0  # TCG on 2 shared cores


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (libvirt qemu:///system)"
    if not (CACHE / "nube-tiny" / "manifest.json").exists():
        return f"no nube-tiny build in {CACHE} (images/build-nube-tiny.sh)"
    if shutil.which("virsh") is None:
        return "libvirt is not installed (installer/libvirt.sh)"
    probe = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True)
    return None if probe.returncode == 0 else "libvirtd does not answer on qemu:///system"


REASON = _skip_reason()
if REASON:
    print(f"tests/tui/test_servers.py skipped: {REASON}")
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

NAME = "tui-vm"


@pytest.fixture(scope="module")
def tenant(nube: Nube) -> Tenant:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    result = subprocess.run([str(BIN / "nube"), "image", "import-default", "--data-dir", str(nube.data_dir)],
                            env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    return make_tenant(nube, "tuivm")


def servers_of(nube: Nube, t: Tenant) -> list[dict[str, Any]]:
    r = requests.get(f"{nube.url}/compute/v2.1/servers", headers=t.headers(nube), timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json()["servers"])


async def launch(nube: Nube, tenant: Tenant) -> tuple[str, dict[str, str], list[str]]:
    notes = Notes()
    app = NubeApp(creds_of(nube, tenant))
    async with app.run_test(size=(100, 30), message_hook=notes.hook) as pilot:
        await logged_in(app)
        await pilot.press("2")
        await wait_until("servers screen", lambda: isinstance(app.screen, ServersScreen))
        screen = app.screen
        await pilot.press("n")
        await wait_until("the launch dialog", lambda: isinstance(app.screen, FormDialog))
        dialog = app.screen
        assert isinstance(dialog, FormDialog)
        await pilot.press(*NAME)
        chosen = dialog.values()
        await pilot.press("enter")
        table = screen.query_one("#servers", ResourceTable)

        def status() -> str:
            rows = [r for r in table.rows_by_key.values() if r["name"] == NAME]
            if rows and rows[0]["status"] == "ERROR":
                raise AssertionError(f"server went to ERROR: {rows[0].get('fault')}")
            return str(rows[0]["status"]) if rows else ""

        await wait_until("the server to be ACTIVE", lambda: status() == "ACTIVE", limit=BOOT)
        server_id = next(k for k, r in table.rows_by_key.items() if r["name"] == NAME)
    return server_id, chosen, notes.errors()


@pytest.fixture(scope="module")
def launched(nube: Nube, tenant: Tenant) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    result = asyncio.run(launch(nube, tenant))
    yield result
    headers = tenant.headers(nube)
    requests.delete(f"{nube.url}/compute/v2.1/servers/{result[0]}", headers=headers, timeout=30)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and any(
        s["id"] == result[0] for s in servers_of(nube, tenant)
    ):
        time.sleep(1)


def test_a_server_launched_from_the_dialog_turns_active(
    nube: Nube, tenant: Tenant, launched: tuple[str, dict[str, str], list[str]]
) -> None:
    server_id, chosen, errors = launched
    assert not errors
    assert chosen["flavor"] == "42"  # m1.nano, the smallest, offered first
    assert chosen["network"] == ""  # the project has no network: --nic none
    images = requests.get(f"{nube.url}/image/v2/images/{chosen['image']}",
                          headers=tenant.headers(nube), timeout=10).json()  # fmt: skip
    assert images["name"] == "nube-tiny" and images["disk_format"] == "qcow2"
    assert [s["id"] for s in servers_of(nube, tenant)] == [server_id]
    other = make_tenant(nube, "tuivmo")
    assert server_id not in {s["id"] for s in servers_of(nube, other)}


@pytest.mark.asyncio
async def test_the_console_log_follows_the_guest(
    nube: Nube, tenant: Tenant, launched: tuple[str, dict[str, str], list[str]]
) -> None:
    app = NubeApp(creds_of(nube, tenant))
    async with app.run_test(size=(100, 30)) as pilot:
        await logged_in(app)
        await pilot.press("2")
        await wait_until("servers screen", lambda: isinstance(app.screen, ServersScreen))
        table = app.screen.query_one("#servers", ResourceTable)
        await wait_until("the server row", lambda: launched[0] in table.rows_by_key)
        table.select_key(launched[0])
        await pilot.press("c")
        await wait_until("the console", lambda: isinstance(app.screen, ConsoleScreen))
        log = app.screen.query_one(Log)
        await wait_until("some console output", lambda: log.line_count > 0, limit=60)
        ready = f"NUBE-TINY READY hostname={NAME}"
        await wait_until("the READY line", lambda: ready in "\n".join(log.lines), limit=BOOT)
        await pilot.press("escape")
        await wait_until("back to servers", lambda: isinstance(app.screen, ServersScreen))
        followers = [w for w in app.workers if w.group == "console"]
        await wait_until("the follower to stop", lambda: all(w.is_finished for w in followers))


def make_volume(nube: Nube, tenant: Tenant, name: str) -> str:
    body = {"volume": {"name": name, "size": 1}}
    r = requests.post(f"{nube.url}/volume/v3/volumes", json=body, headers=tenant.headers(nube),
                      timeout=10)  # fmt: skip
    assert r.status_code == 202, r.text
    return str(r.json()["volume"]["id"])


@pytest.mark.asyncio
async def test_attaching_and_detaching_a_volume_from_the_volumes_screen(
    nube: Nube, tenant: Tenant, launched: tuple[str, dict[str, str], list[str]]
) -> None:
    volume_id = await asyncio.to_thread(make_volume, nube, tenant, "tui-disk")
    notes = Notes()
    app = NubeApp(creds_of(nube, tenant))
    async with app.run_test(size=(100, 30), message_hook=notes.hook) as pilot:
        await logged_in(app)
        await pilot.press("4")
        await wait_until("volumes screen", lambda: isinstance(app.screen, VolumesScreen))
        screen = app.screen
        table = screen.query_one("#volumes", ResourceTable)

        def status() -> str:
            row = table.rows_by_key.get(volume_id)
            return str(row["status"]) if row else ""

        await wait_until("the volume available", lambda: status() == "available", limit=120)
        table.select_key(volume_id)
        await pilot.press("a")
        await wait_until("the attach dialog", lambda: isinstance(app.screen, FormDialog))
        assert app.screen.values() == {"server": launched[0]}  # type: ignore[attr-defined]
        await pilot.click("#submit")
        await wait_until("in-use", lambda: status() == "in-use", limit=300)
        assert table.rows_by_key[volume_id]["attachments"][0]["server_id"] == launched[0]
        await pilot.press("t")
        await wait_until("the confirmation", lambda: app.screen.query("#question"))
        await pilot.press("y")
        await wait_until("available again", lambda: status() == "available", limit=300)
        assert not notes.errors(), notes.errors()


@pytest.mark.asyncio
async def test_the_overview_lists_the_servers_recent_jobs(
    nube: Nube, tenant: Tenant, launched: tuple[str, dict[str, str], list[str]]
) -> None:
    app = NubeApp(creds_of(nube, tenant))
    async with app.run_test(size=(120, 40)):
        await logged_in(app)
        await wait_until("the overview", lambda: app.screen.query("#jobs"))
        jobs = app.screen.query_one("#jobs", DataTable)

        def actions() -> set[str]:
            rows = [jobs.get_row_at(i) for i in range(jobs.row_count)]
            return {f"{row[1]} {row[2]}" for row in rows}

        await wait_until("the create job", lambda: f"create {NAME}" in actions())


@pytest.mark.asyncio
async def test_stopping_the_server_after_confirmation(
    nube: Nube, tenant: Tenant, launched: tuple[str, dict[str, str], list[str]]
) -> None:
    notes = Notes()
    app = NubeApp(creds_of(nube, tenant))
    async with app.run_test(size=(100, 30), message_hook=notes.hook) as pilot:
        await logged_in(app)
        await pilot.press("2")
        await wait_until("servers screen", lambda: isinstance(app.screen, ServersScreen))
        screen = app.screen
        table = screen.query_one("#servers", ResourceTable)
        await wait_until("the server row", lambda: launched[0] in table.rows_by_key)
        table.select_key(launched[0])
        await pilot.press("x")
        await wait_until("the confirmation", lambda: app.screen.query("#question"))
        await pilot.press("y")

        def status() -> str:
            return str(table.rows_by_key[launched[0]]["status"])

        await wait_until("SHUTOFF", lambda: status() == "SHUTOFF", limit=300)
        assert not notes.errors(), notes.errors()
    code, body = await get(f"{nube.url}/compute/v2.1/servers/{launched[0]}", tenant.headers(nube))
    assert code == 200 and '"SHUTOFF"' in body

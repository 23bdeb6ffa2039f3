"""The overview's health box: the APIs for everyone, and the hypervisor (libvirt) for admins."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from textual.widgets import DataTable, Static

from tests.api.harness import Nube, Tenant, make_tenant
from tests.tui.conftest import Notes, creds_of, get, logged_in, wait_until
from tui.app import NubeApp
from tui.resources import SERVICES

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def member(nube: Nube) -> Tenant:
    return make_tenant(nube, "tuih")


def health_rows(app: NubeApp) -> dict[str, list[str]]:
    table = app.screen.query_one("#health", DataTable)
    return {str(key.value): [str(c) for c in table.get_row(key)] for key in table.rows}


async def test_an_admin_sees_libvirts_state_and_the_hosts_capacity(nube: Nube) -> None:
    notes = Notes()
    app = NubeApp(creds_of(nube))
    async with app.run_test(size=(100, 30), message_hook=notes.hook):
        await logged_in(app)
        await wait_until("the libvirt row", lambda: "libvirt" in health_rows(app))
        state, version = health_rows(app)["libvirt"][1:]
        host = app.screen.query_one("#host", Static)
        text = str(host.render())
        assert not host.has_class("hidden")
    headers = {"X-Auth-Token": nube.token(), "OpenStack-API-Version": "compute 2.87"}
    status, body = await get(f"{nube.url}/compute/v2.1/os-hypervisors/detail", headers)
    assert status == 200, body
    (hyp,) = json.loads(body)["hypervisors"]
    assert state == "up" and hyp["state"] == "up"
    assert version.startswith("QEMU ") and version.count(".") == 2
    # Used and running move with every guest on this libvirt; what the host has does not.
    assert f"/{hyp['vcpus']} " in text and f"/{hyp['memory_mb']} MiB" in text
    assert "running VMs" in text
    assert not notes.errors()


async def test_a_member_sees_the_apis_health_and_no_hypervisor(nube: Nube, member: Tenant) -> None:
    notes = Notes()
    app = NubeApp(creds_of(nube, member))
    async with app.run_test(size=(100, 30), message_hook=notes.hook) as pilot:
        await logged_in(app)
        await wait_until("the API rows", lambda: len(health_rows(app)) == len(SERVICES))
        await wait_until("the workers", lambda: all(w.is_finished for w in app.workers))
        await pilot.pause()
        assert set(health_rows(app)) == set(SERVICES)
        assert all(row[1] == "up" for row in health_rows(app).values())
        assert app.screen.query_one("#host", Static).has_class("hidden")
    assert not notes.errors()  # no refused call to the admin-only views


@pytest.fixture(scope="module")
def no_libvirt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nube]:
    server = Nube(tmp_path_factory.mktemp("nube-tui-nolibvirt") / "data",
                  extra_env={"NUBE_LIBVIRT_URI": "qemu+unix:///system?socket=/nonexistent/nb-libvirt"})  # fmt: skip
    server.start()
    yield server
    server.stop()


async def test_an_admin_sees_libvirt_down_when_it_does_not_answer(no_libvirt: Nube) -> None:
    app = NubeApp(creds_of(no_libvirt))
    async with app.run_test(size=(100, 30)):
        await logged_in(app)
        await wait_until("the libvirt row", lambda: "libvirt" in health_rows(app))
        assert health_rows(app)["libvirt"][1] == "DOWN"
        assert health_rows(app)["compute"][1] == "up"
        text = str(app.screen.query_one("#host", Static).render())
        assert text == "no report from libvirt yet"

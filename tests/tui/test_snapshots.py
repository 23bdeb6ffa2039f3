"""The main screens as text at 80x24 and 120x40, against their own fresh Nube so what they show is
the same on every run (latencies, ids and times masked). NUBE_UPDATE_SNAPSHOTS=1 rewrites them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.api.harness import Nube, Tenant, make_tenant
from tests.tui.conftest import creds_of, logged_in, masked, screen_text, wait_until
from tui.app import NubeApp
from tui.screens.servers import ServersScreen
from tui.screens.volumes import VolumesScreen
from tui.widgets.table import ResourceTable

HERE = Path(__file__).parent / "snapshots"
SIZES = [(80, 24), (120, 40)]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nube]:
    server = Nube(tmp_path_factory.mktemp("nube-snap") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tenant(fresh: Nube) -> Tenant:
    t = make_tenant(fresh, "snap")
    body = {"volume": {"name": "data", "size": 1}}
    r = requests.post(
        f"{fresh.url}/volume/v3/volumes", json=body, headers=t.headers(fresh), timeout=10
    )
    assert r.status_code == 202, r.text
    return t


def check(name: str, text: str) -> None:
    path = HERE / f"{name}.txt"
    if os.environ.get("NUBE_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert path.exists(), f"no snapshot {path}: run with NUBE_UPDATE_SNAPSHOTS=1 and review it"
    assert text == path.read_text(), f"{name} differs from {path}:\n{text}"


def overview_ready(app: NubeApp) -> bool:
    counts = app.screen.query("#counts")
    return bool(counts) and "volumes 1" in str(counts.first().render())


def servers_ready(app: NubeApp) -> bool:
    return (
        isinstance(app.screen, ServersScreen) and app.screen.query_one(ResourceTable).columns != {}
    )


def volumes_ready(app: NubeApp) -> bool:
    if not isinstance(app.screen, VolumesScreen):
        return False
    rows = list(app.screen.query_one(ResourceTable).rows_by_key.values())
    return len(rows) == 1 and rows[0]["status"] == "available"


SCREENS = {"overview": ("", overview_ready), "servers": ("2", servers_ready),
           "volumes": ("4", volumes_ready)}  # fmt: skip


async def shot(fresh: Nube, tenant: Tenant, screen: str, size: tuple[int, int]) -> str:
    key, ready = SCREENS[screen]
    app = NubeApp(creds_of(fresh, tenant))
    async with app.run_test(size=size) as pilot:
        await logged_in(app)
        if key:
            await pilot.press(key)
        await wait_until(f"{screen} with its data", lambda: ready(app))
        await wait_until("the workers", lambda: all(w.is_finished for w in app.workers))
        await pilot.pause()
        return masked(screen_text(app), {tenant.name: "snap-xxxxxx"})


@pytest.mark.asyncio
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
async def test_screen_matches_its_snapshot(
    fresh: Nube, tenant: Tenant, screen: str, size: tuple[int, int]
) -> None:
    text = await shot(fresh, tenant, screen, size)
    check(f"{screen}-{size[0]}x{size[1]}", text)

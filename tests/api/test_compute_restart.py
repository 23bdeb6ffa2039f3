"""Crash safety: `kill -9` of nube serve in the middle of server work, then a restart, never leaves a
server stuck in a transitional state; reconcile() settles it from what libvirt really holds."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.harness import BIN, Nube
from tests.api.test_compute import REASON, nova_headers, wait_for

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture
def crashable(tmp_path: Path) -> Iterator[Nube]:
    server = Nube(tmp_path / "data")
    server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    subprocess.run([str(BIN / "nube"), "image", "import-default", "--data-dir", str(server.data_dir)],
                   env=env, check=True, capture_output=True, timeout=300)  # fmt: skip
    yield server
    if server.proc and server.proc.poll() is None:
        token = server.token()
        for s in requests.get(
            f"{server.url}/compute/v2.1/servers", headers=nova_headers(token), timeout=10
        ).json()["servers"]:
            requests.delete(
                f"{server.url}/compute/v2.1/servers/{s['id']}",
                headers=nova_headers(token),
                timeout=10,
            )
        wait_for(
            lambda: (
                not requests.get(
                    f"{server.url}/compute/v2.1/servers", headers=nova_headers(token), timeout=10
                ).json()["servers"]
            ),
            120,
            "deletes",
        )
    server.stop()


def boot(nube: Nube) -> str:
    token = nube.token()
    image = requests.get(
        f"{nube.url}/image/v2/images?name=nube-tiny", headers={"X-Auth-Token": token}, timeout=10
    ).json()["images"][0]["id"]
    r = requests.post(f"{nube.url}/compute/v2.1/servers", headers=nova_headers(token), timeout=10,
                      json={"server": {"name": "crash", "imageRef": image, "flavorRef": "42", "networks": "none"}})  # fmt: skip
    assert r.status_code == 202, r.text
    return str(r.json()["server"]["id"])


def settled(nube: Nube, server_id: str) -> dict[str, Any] | None:
    r = requests.get(
        f"{nube.url}/compute/v2.1/servers/{server_id}",
        headers=nova_headers(nube.token()),
        timeout=10,
    )
    server = r.json()["server"]
    return (
        server if server["OS-EXT-STS:task_state"] is None and server["status"] != "BUILD" else None
    )


def kill9_and_restart(nube: Nube) -> None:
    assert nube.proc is not None
    nube.proc.kill()
    nube.proc.wait()
    nube.start()


def test_kill_9_during_a_boot_then_restart_ends_active_or_error(crashable: Nube) -> None:
    server_id = boot(crashable)
    time.sleep(0.3)
    kill9_and_restart(crashable)
    final = wait_for(lambda: settled(crashable, server_id), 120, "the server to settle")
    assert final["status"] in ("ACTIVE", "ERROR")
    if final["status"] == "ERROR":
        assert final["fault"]["message"]


def test_kill_9_during_a_stop_then_restart_ends_shutoff_or_active(crashable: Nube) -> None:
    server_id = boot(crashable)
    wait_for(lambda: settled(crashable, server_id), 120, "ACTIVE")
    token = crashable.token()
    r = requests.post(
        f"{crashable.url}/compute/v2.1/servers/{server_id}/action",
        json={"os-stop": None},
        headers=nova_headers(token),
        timeout=10,
    )
    assert r.status_code == 202
    kill9_and_restart(crashable)
    final = wait_for(lambda: settled(crashable, server_id), 120, "the server to settle")
    assert final["status"] in ("SHUTOFF", "ACTIVE")
    power = {"SHUTOFF": 4, "ACTIVE": 1}[final["status"]]
    assert final["OS-EXT-STS:power_state"] == power

"""Crash safety of volume jobs: `kill -9` of nube serve right after an attach, a detach or a delete,
then a restart: no volume stays attaching, detaching or deleting, and in-use means the guest's
domain really holds the disk."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import requests

from tests.api.harness import Nube
from tests.api.test_compute import REASON, nova_headers, wait_for
from tests.api.test_compute_restart import boot, crashable, kill9_and_restart, settled

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
__all__ = ["crashable"]

TRANSITIONAL = {"creating", "attaching", "detaching", "deleting", "extending", "reserved"}


def cinder(nube: Nube, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, f"{nube.url}/volume/v3{path}", json=body, timeout=10,
                            headers={"X-Auth-Token": nube.token(), "OpenStack-API-Version": "volume 3.71"})  # fmt: skip


def status(nube: Nube, volume_id: str) -> str:
    r = cinder(nube, "GET", f"/volumes/{volume_id}")
    return "gone" if r.status_code == 404 else str(r.json()["volume"]["status"])


def domain_has(server_id: str, volume_id: str) -> bool:
    xml = subprocess.run(["virsh", "-c", "qemu:///system", "dumpxml", "--inactive", f"nube-{server_id}"],
                         capture_output=True, text=True, timeout=30).stdout  # fmt: skip
    return f"<serial>{volume_id[:20]}</serial>" in xml


def test_kill9_during_attach_detach_and_delete_leaves_no_volume_in_transit(crashable: Nube) -> None:
    nube = crashable
    server_id = boot(nube)
    wait_for(lambda: settled(nube, server_id), what="server settled")
    vol = cinder(nube, "POST", "/volumes", {"volume": {"size": 1, "name": "crash"}}).json()[
        "volume"
    ]
    wait_for(lambda: status(nube, vol["id"]) == "available", 60, "volume available")
    attach = f"{nube.url}/compute/v2.1/servers/{server_id}/os-volume_attachments"
    r = requests.post(attach, json={"volumeAttachment": {"volumeId": vol["id"]}},
                      headers=nova_headers(nube.token(), "2.89"), timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    kill9_and_restart(nube)
    after = status(nube, vol["id"])
    assert after in ("in-use", "available")
    assert (after == "in-use") == domain_has(server_id, vol["id"])
    if after == "available":
        requests.post(attach, json={"volumeAttachment": {"volumeId": vol["id"]}},
                      headers=nova_headers(nube.token(), "2.89"), timeout=10)  # fmt: skip
        wait_for(lambda: status(nube, vol["id"]) == "in-use", 60, "in-use")
    r = requests.delete(
        f"{attach}/{vol['id']}", headers=nova_headers(nube.token(), "2.89"), timeout=10
    )
    assert r.status_code == 202, r.text
    kill9_and_restart(nube)
    after = status(nube, vol["id"])
    assert after in ("in-use", "available")
    assert (after == "in-use") == domain_has(server_id, vol["id"])
    if after == "in-use":
        requests.delete(
            f"{attach}/{vol['id']}", headers=nova_headers(nube.token(), "2.89"), timeout=10
        )
        wait_for(lambda: status(nube, vol["id"]) == "available", 60, "available")
    assert cinder(nube, "DELETE", f"/volumes/{vol['id']}").status_code == 202
    kill9_and_restart(nube)
    wait_for(lambda: status(nube, vol["id"]) == "gone", 60, "volume deleted after the restart")
    listed = cinder(nube, "GET", "/volumes/detail?all_tenants=1").json()["volumes"]
    assert not [v for v in listed if v["status"] in TRANSITIONAL]

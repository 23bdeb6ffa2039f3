"""Block storage through the real `openstack` CLI on real nube-tiny guests (libvirt/QEMU, TCG).

Two guests are booted for the module and reused. Each runs a user-data script that watches for
virtio disks by serial (the first 20 characters of the volume id), writes a marker to the volume it
was told to write, and prints what every new disk holds: `VOLTEST READ <serial> <marker>`."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.harness import BIN, Nube, Tenant, make_tenant
from tests.api.harness import openstack as cli
from tests.api.test_compute import REASON, compute, console, nova_headers, wait_for
from tests.api.test_compute import image as image

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

MARK = f"NUBEMARK-{uuid.uuid4().hex[:12]}"
GiB_SECTORS = 2097152

WATCH = """#!/bin/sh
WRITE="{write}"
MARK="{mark}"
(
seen=""
while true; do
  now=""
  for s in /sys/block/vd*/serial; do
    [ -f "$s" ] || continue
    ser=$(cat "$s"); [ -n "$ser" ] || continue
    dev=$(basename "$(dirname "$s")")
    now="$now $ser"
    case " $seen " in *" $ser "*) continue;; esac
    if [ "$ser" = "$WRITE" ]; then
      printf '%s' "$MARK" | dd of=/dev/$dev bs=512 count=1 conv=sync 2>/dev/null
      sync
      echo "VOLTEST WROTE $ser"
    fi
    got=$(dd if=/dev/$dev bs=32 count=1 2>/dev/null | tr -dc 'A-Za-z0-9-')
    echo "VOLTEST READ $ser $got"
  done
  seen="$now"
  sleep 1
done
) >/dev/console 2>&1 &
"""


def serial(volume_id: str) -> str:
    return volume_id[:20]


def volume(nube: Nube, t: Tenant, volume_id: str) -> dict[str, Any]:
    r = requests.get(f"{nube.url}/volume/v3/volumes/{volume_id}", timeout=10,
                     headers={**t.headers(nube), "OpenStack-API-Version": "volume 3.71"})  # fmt: skip
    assert r.status_code == 200, r.text
    return dict(r.json()["volume"])


def wait_volume(nube: Nube, t: Tenant, volume_id: str, status: str) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        vol = volume(nube, t, volume_id)
        assert not vol["status"].startswith("error"), vol
        return vol if vol["status"] == status else None

    return wait_for(settled, timeout=120, what=f"volume {volume_id} to be {status}")


def wait_console(nube: Nube, t: Tenant, server_id: str, text: str) -> str:
    return wait_for(lambda: text in console(nube, t, server_id) and text, what=f"console: {text}")


@pytest.fixture(scope="module")
def tenant(nube: Nube) -> Tenant:
    return make_tenant(nube, "vol")


@pytest.fixture(scope="module")
def vol1(nube: Nube, tenant: Tenant) -> dict[str, Any]:
    made = cli(tenant.env(nube), "volume", "create", "--size", "1", "vol1", "-f", "json")
    return wait_volume(nube, tenant, made["id"], "available")


def _boot(nube: Nube, t: Tenant, name: str, write: str, tmp: Path) -> dict[str, Any]:
    script = tmp / f"{name}.sh"
    script.write_text(WATCH.format(write=write, mark=MARK))
    return dict(cli(t.env(nube), "server", "create", "--image", "nube-tiny", "--flavor", "m1.nano", "--nic", "none",
                    "--user-data", str(script), "--wait", name, "-f", "json"))  # fmt: skip


def _delete(nube: Nube, t: Tenant, server_id: str) -> None:
    subprocess.run([str(BIN / "openstack"), "server", "delete", "--wait", server_id],
                   env=t.env(nube), capture_output=True, timeout=180)  # fmt: skip


@pytest.fixture(scope="module")
def servers(
    nube: Nube,
    tenant: Tenant,
    image: str,
    vol1: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("userdata")
    a = _boot(nube, tenant, "writer", serial(vol1["id"]), tmp)
    b = _boot(nube, tenant, "reader", "", tmp)
    for s in (a, b):
        wait_console(nube, tenant, s["id"], "NUBE-TINY READY")
    yield a, b
    for s in (a, b):
        _delete(nube, tenant, s["id"])


def test_discovery_and_catalog(nube: Nube, tenant: Tenant) -> None:
    root = requests.get(f"{nube.url}/volume/", timeout=5)
    v3 = requests.get(f"{nube.url}/volume/v3/", timeout=5)
    assert root.status_code == 300 and v3.status_code == 200
    doc = v3.json()["versions"][0]
    assert doc["id"] == "v3.0" and doc["min_version"] == "3.0" and doc["version"] == "3.71"
    catalog = cli(tenant.env(nube), "catalog", "list", "-f", "json")
    types = {c["Type"] for c in catalog}
    assert {"block-storage", "volumev3"} <= types


def test_volume_create_accepts_explicit_nulls_and_echoes_the_microversion(
    nube: Nube, tenant: Tenant
) -> None:
    body = {"volume": {"size": 1, "name": "nulls", "availability_zone": None, "volume_type": None,
                       "description": None, "backup_id": None, "source_volid": None, "metadata": None,
                       "snapshot_id": None, "imageRef": None, "consistencygroup_id": None}}  # fmt: skip
    pid = tenant.project_id
    r = requests.post(f"{nube.url}/volume/v3/{pid}/volumes", json=body, timeout=10,
                      headers={**tenant.headers(nube), "OpenStack-API-Version": "volume 3.71"})  # fmt: skip
    assert r.status_code == 202, r.text
    assert r.headers["OpenStack-API-Version"] == "volume 3.71"
    vol = r.json()["volume"]
    assert vol["bootable"] == "false" and vol["attachments"] == [] and vol["status"] == "creating"
    wait_volume(nube, tenant, vol["id"], "available")
    too_new = requests.get(f"{nube.url}/volume/v3/volumes", timeout=10,
                           headers={**tenant.headers(nube), "OpenStack-API-Version": "volume 3.99"})  # fmt: skip
    assert too_new.status_code == 406
    cli(tenant.env(nube), "volume", "delete", vol["id"])
    wait_for(lambda: requests.get(f"{nube.url}/volume/v3/volumes/{vol['id']}", headers=tenant.headers(nube),
                                  timeout=5).status_code == 404, timeout=30, what="volume gone")  # fmt: skip


def test_list_paginates_with_limit_and_marker(nube: Nube) -> None:
    t = make_tenant(nube, "vol-page")
    ids = {
        cli(t.env(nube), "volume", "create", "--size", "1", f"p{i}", "-f", "json")["id"]
        for i in range(3)
    }
    seen: list[str] = []
    url = f"{nube.url}/volume/v3/volumes/detail?limit=2"
    while url:
        body = requests.get(url, headers=t.headers(nube), timeout=5).json()
        seen += [v["id"] for v in body["volumes"]]
        url = next((link["href"] for link in body.get("volumes_links", [])), "")
    assert sorted(seen) == sorted(ids)
    named = cli(t.env(nube), "volume", "list", "--name", "p1", "-f", "json")
    assert [v["Name"] for v in named] == ["p1"]


def test_attach_write_detach_and_read_on_a_second_server(
    nube: Nube, tenant: Tenant, vol1: dict[str, Any], servers: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    a, b = servers
    env = tenant.env(nube)
    cli(env, "server", "add", "volume", a["id"], vol1["id"])
    attached = wait_volume(nube, tenant, vol1["id"], "in-use")
    assert attached["attachments"][0]["server_id"] == a["id"]
    wait_console(
        nube,
        tenant,
        a["id"],
        f"NUBE-TINY BLOCK + vdb size={GiB_SECTORS} serial={serial(vol1['id'])}",
    )
    wait_console(nube, tenant, a["id"], f"VOLTEST WROTE {serial(vol1['id'])}")
    shown = requests.get(compute(nube, f"/servers/{a['id']}"), timeout=10,
                         headers=nova_headers(tenant.headers(nube)["X-Auth-Token"]))  # fmt: skip
    assert shown.json()["server"]["os-extended-volumes:volumes_attached"] == [
        {"id": vol1["id"], "delete_on_termination": False}
    ]
    listed = cli(env, "server", "volume", "list", a["id"], "-f", "json")
    assert [x["Volume ID"] for x in listed] == [vol1["id"]]
    assert cli(env, "volume", "delete", vol1["id"], check=False).returncode != 0
    cli(env, "server", "remove", "volume", a["id"], vol1["id"])
    wait_volume(nube, tenant, vol1["id"], "available")
    cli(env, "server", "add", "volume", b["id"], vol1["id"])
    wait_volume(nube, tenant, vol1["id"], "in-use")
    wait_console(nube, tenant, b["id"], f"VOLTEST READ {serial(vol1['id'])} {MARK}")


def test_extend_while_attached_the_guest_sees_the_new_size(
    nube: Nube, tenant: Tenant, vol1: dict[str, Any], servers: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, b = servers
    assert volume(nube, tenant, vol1["id"])["status"] == "in-use"
    r = requests.post(f"{nube.url}/volume/v3/volumes/{vol1['id']}/action", json={"os-extend": {"new_size": 2}},
                      headers={**tenant.headers(nube), "OpenStack-API-Version": "volume 3.71"}, timeout=10)  # fmt: skip
    assert r.status_code == 202, r.text
    vol = wait_volume(nube, tenant, vol1["id"], "in-use")
    assert vol["size"] == 2
    wait_console(nube, tenant, b["id"], f"size={2 * GiB_SECTORS} serial={serial(vol1['id'])}")


def test_snapshot_while_attached_then_a_volume_from_it_holds_the_data(
    nube: Nube, tenant: Tenant, vol1: dict[str, Any], servers: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    a, _ = servers
    env = tenant.env(nube)
    snap = cli(
        env,
        "volume",
        "snapshot",
        "create",
        "--volume",
        vol1["id"],
        "--force",
        "snap1",
        "-f",
        "json",
    )
    wait_for(lambda: cli(env, "volume", "snapshot", "show", snap["id"], "-f", "json")["status"] == "available",
             timeout=120, what="snapshot available")  # fmt: skip
    copy = cli(env, "volume", "create", "--snapshot", snap["id"], "fromsnap", "-f", "json")
    wait_volume(nube, tenant, copy["id"], "available")
    cli(env, "server", "add", "volume", a["id"], copy["id"])
    wait_volume(nube, tenant, copy["id"], "in-use")
    wait_console(nube, tenant, a["id"], f"VOLTEST READ {serial(copy['id'])} {MARK}")
    cli(env, "server", "remove", "volume", a["id"], copy["id"])
    wait_volume(nube, tenant, copy["id"], "available")


def test_an_attached_volume_survives_a_resize_of_its_server(
    nube: Nube, tenant: Tenant, vol1: dict[str, Any], servers: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, b = servers
    env = tenant.env(nube)
    line = f"VOLTEST READ {serial(vol1['id'])} {MARK}"
    before = console(nube, tenant, b["id"]).count(line)
    cli(env, "server", "resize", "--flavor", "m1.micro", "--wait", b["id"])
    cli(env, "server", "resize", "confirm", b["id"])
    wait_for(
        lambda: console(nube, tenant, b["id"]).count(line) > before,
        what="the data again after the resize",
    )
    assert volume(nube, tenant, vol1["id"])["status"] == "in-use"


def test_another_project_can_neither_see_nor_attach_the_volume(
    nube: Nube, vol1: dict[str, Any], servers: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    other = make_tenant(nube, "vol-other")
    assert cli(other.env(nube), "volume", "show", vol1["id"], check=False).returncode != 0
    assert cli(other.env(nube), "volume", "list", "-f", "json") == []
    token = other.headers(nube)["X-Auth-Token"]
    r = requests.post(compute(nube, f"/servers/{servers[0]['id']}/os-volume_attachments"),
                      json={"volumeAttachment": {"volumeId": vol1["id"]}}, headers=nova_headers(token, "2.89"),
                      timeout=10)  # fmt: skip
    assert r.status_code == 404
    r = requests.delete(
        f"{nube.url}/volume/v3/volumes/{vol1['id']}", headers={"X-Auth-Token": token}, timeout=10
    )
    assert r.status_code == 404


def test_volume_quota_overflow_is_refused_in_cinders_format(nube: Nube) -> None:
    t = make_tenant(nube, "vol-quota")
    admin = {"X-Auth-Token": nube.token()}
    r = requests.put(f"{nube.url}/volume/v3/os-quota-sets/{t.project_id}", headers=admin, timeout=10,
                     json={"quota_set": {"volumes": 1, "gigabytes": 3}})  # fmt: skip
    assert r.status_code == 200 and r.json()["quota_set"]["volumes"] == 1
    cli(t.env(nube), "volume", "create", "--size", "1", "q1")
    refused = cli(t.env(nube), "volume", "create", "--size", "1", "q2", check=False)
    assert refused.returncode != 0 and "413" in refused.stderr
    shown = requests.get(f"{nube.url}/volume/v3/os-quota-sets/{t.project_id}?usage=True",
                         headers=t.headers(nube), timeout=10).json()["quota_set"]  # fmt: skip
    assert shown["volumes"] == {"limit": 1, "in_use": 1, "reserved": 0, "allocated": 0}


def test_volume_from_image_is_bootable_and_uploads_back_to_an_image(
    nube: Nube, tenant: Tenant, image: str
) -> None:
    env = tenant.env(nube)
    made = cli(
        env, "volume", "create", "--image", "nube-tiny", "--size", "1", "fromimage", "-f", "json"
    )
    vol = wait_volume(nube, tenant, made["id"], "available")
    assert vol["bootable"] == "true" and vol["volume_image_metadata"]["image_name"] == "nube-tiny"
    r = requests.post(f"{nube.url}/volume/v3/volumes/{vol['id']}/action", timeout=10, headers=tenant.headers(nube),
                      json={"os-volume_upload_image": {"image_name": "from-volume", "disk_format": "qcow2"}})  # fmt: skip
    assert r.status_code == 202, r.text
    image_id = r.json()["os-volume_upload_image"]["image_id"]
    wait_for(lambda: cli(env, "image", "show", image_id, "-f", "json")["status"] == "active", timeout=120,
             what="uploaded image active")  # fmt: skip
    wait_volume(nube, tenant, vol["id"], "available")
    cli(env, "image", "delete", image_id)
    cli(env, "volume", "delete", vol["id"])

"""The host's admin views (os-hypervisors, os-services, availability zones) through the real
`openstack` CLI and raw HTTP, against libvirt on this machine, with one nube-tiny guest running;
and a second Nube whose libvirt URI leads nowhere, whose host is down."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.harness import BIN, Nube, Tenant, make_tenant
from tests.api.harness import openstack as cli

CACHE = Path(os.environ.get("NUBE_IMAGE_CACHE", "/var/cache/nube/images"))
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (libvirt qemu:///system)"
    if not (CACHE / "nube-tiny" / "manifest.json").exists():
        return f"no nube-tiny build in {CACHE} (images/build-nube-tiny.sh)"
    if shutil.which("virsh") is None:
        return "libvirt is not installed (installer/libvirt.sh)"
    probe = subprocess.run(
        ["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=30
    )
    return None if probe.returncode == 0 else "libvirtd does not answer on qemu:///system"  # fmt: skip


REASON = _skip_reason()
if REASON:
    print(f"tests/api/test_hypervisors.py skipped: {REASON}")
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def nova(nube: Nube, path: str, token: str, version: str = "2.96") -> requests.Response:
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"}
    return requests.get(f"{nube.url}/compute/v2.1{path}", headers=headers, timeout=60)


def nodeinfo() -> dict[str, str]:
    out = subprocess.run(["virsh", "-c", "qemu:///system", "nodeinfo"], capture_output=True,
                         text=True, timeout=30, check=True).stdout  # fmt: skip
    return {
        k.strip(): v.strip()
        for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)
    }


@pytest.fixture(scope="module")
def member(nube: Nube) -> Tenant:
    return make_tenant(nube, "hypm")


@pytest.fixture(scope="module")
def vm(nube: Nube, member: Tenant) -> Iterator[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    result = subprocess.run([str(BIN / "nube"), "image", "import-default", "--data-dir", str(nube.data_dir)],
                            env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    made = cli(member.env(nube), "server", "create", "--image", "nube-tiny", "--flavor", "m1.nano",
               "--nic", "none", "--wait", "hypvm", "-f", "json")  # fmt: skip
    assert made["status"] == "ACTIVE", made
    yield made
    subprocess.run([str(BIN / "openstack"), "server", "delete", "--wait", made["id"]],
                   env=member.env(nube), capture_output=True, timeout=120)  # fmt: skip


def test_hypervisor_list_shows_the_host_up_on_qemu(nube: Nube) -> None:
    (row,) = cli(nube.env(), "hypervisor", "list", "-f", "json")
    assert row["Hypervisor Hostname"] == "nube" and row["State"] == "up"
    assert row["Hypervisor Type"] == "QEMU" and row["Host IP"] == "127.0.0.1"
    assert UUID.match(row["ID"])


def test_hypervisor_list_long_counts_libvirts_cpus_memory_and_the_running_guest(
    nube: Nube, vm: dict[str, Any]
) -> None:
    env = nube.env()
    (row,) = cli(
        env, "--os-compute-api-version", "2.87", "hypervisor", "list", "--long", "-f", "json"
    )
    info = nodeinfo()
    assert row["vCPUs"] == int(info["CPU(s)"])
    assert row["Memory MB"] == int(info["Memory size"].split()[0]) // 1024
    flavor = cli(env, "flavor", "show", "m1.nano", "-f", "json")
    # Every running domain on this libvirt counts (other tests' guests too), ours at least.
    assert row["vCPUs Used"] >= flavor["vcpus"] and row["Memory MB Used"] >= flavor["ram"]


def test_hypervisor_detail_reports_the_running_guests_and_qemus_version(
    nube: Nube, vm: dict[str, Any]
) -> None:
    r = nova(nube, "/os-hypervisors/detail", nube.token(), "2.87")
    assert r.status_code == 200, r.text
    (hyp,) = r.json()["hypervisors"]
    assert (
        hyp["running_vms"] >= 1 and hyp["free_ram_mb"] == hyp["memory_mb"] - hyp["memory_mb_used"]
    )
    version = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True,
                             text=True, timeout=30, check=True).stdout  # fmt: skip
    major, minor, micro = re.search(r"hypervisor: QEMU (\d+)\.(\d+)\.(\d+)", version).groups()  # type: ignore[union-attr]
    assert hyp["hypervisor_version"] == int(major) * 1_000_000 + int(minor) * 1_000 + int(micro)
    assert hyp["cpu_info"]["arch"] == os.uname().machine
    assert hyp["local_gb"] > 0 and hyp["service"]["host"] == "nube"
    r = nova(nube, f"/os-hypervisors/{hyp['id']}?with_servers=true", nube.token(), "2.87")
    assert vm["id"] in {s["uuid"] for s in r.json()["hypervisor"]["servers"]}


def test_hypervisor_show_by_name_gives_the_uptime_and_the_service(nube: Nube) -> None:
    shown = cli(nube.env(), "hypervisor", "show", "nube", "-f", "json")
    assert shown["state"] == "up" and shown["status"] == "enabled"
    assert shown["service_host"] == "nube" and UUID.match(shown["service_id"])
    assert shown["load_average"].count(",") == 2  # parsed by the CLI from `uptime`
    listed = cli(nube.env(), "hypervisor", "list", "-f", "json")
    assert shown["id"] == listed[0]["ID"]


def test_hypervisor_shapes_follow_the_microversion(nube: Nube) -> None:
    token = nube.token()
    old = nova(nube, "/os-hypervisors/detail", token, "2.1").json()["hypervisors"][0]
    assert old["id"] == 1 and isinstance(old["cpu_info"], str) and "uptime" not in old
    new = nova(nube, "/os-hypervisors/detail", token, "2.88").json()["hypervisors"][0]
    assert UUID.match(new["id"]) and "vcpus" not in new and "cpu_info" not in new
    assert "load average" in new["uptime"]
    assert nova(nube, "/os-hypervisors/1", token, "2.53").status_code == 400
    missing = nova(nube, "/os-hypervisors/00000000-0000-0000-0000-000000000000", token)
    assert missing.status_code == 404 and "itemNotFound" in missing.json()
    assert nova(nube, "/os-hypervisors/2", token, "2.1").status_code == 404
    assert nova(nube, "/os-hypervisors?hypervisor_hostname_pattern=nu", token).status_code == 200
    assert nova(nube, "/os-hypervisors?hypervisor_hostname_pattern=xx", token).status_code == 404
    uptime = nova(nube, "/os-hypervisors/1/uptime", token, "2.1")
    assert uptime.status_code == 200 and " up " in uptime.json()["hypervisor"]["uptime"]


def test_compute_service_list_has_nova_compute_up_on_the_host(nube: Nube) -> None:
    (row,) = cli(nube.env(), "compute", "service", "list", "-f", "json")
    assert (row["Binary"], row["Host"], row["Zone"]) == ("nova-compute", "nube", "nova")
    assert row["Status"] == "enabled" and row["State"] == "up"
    seen = datetime.fromisoformat(row["Updated At"]).replace(tzinfo=UTC)
    assert datetime.now(UTC) - seen < timedelta(minutes=2)
    none = cli(
        nube.env(), "compute", "service", "list", "--service", "nova-scheduler", "-f", "json"
    )
    assert none == []


def test_availability_zone_detail_lists_the_host_and_its_service(nube: Nube) -> None:
    rows = cli(nube.env(), "availability", "zone", "list", "--compute", "--long", "-f", "json")
    (row,) = [r for r in rows if r["Host Name"]]
    assert (row["Zone Name"], row["Zone Status"]) == ("nova", "available")
    assert row["Service Name"] == "nova-compute" and row["Service Status"].startswith("enabled :-)")


def test_a_member_is_refused_the_host_views_in_novas_format(nube: Nube, member: Tenant) -> None:
    env = member.env(nube)
    for args in (
        ("hypervisor", "list"),
        ("hypervisor", "show", "nube"),
        ("compute", "service", "list"),
    ):
        result = cli(env, *args, check=False)
        assert result.returncode != 0 and "403" in result.stderr, (args, result.stderr)
    token = member.headers(nube)["X-Auth-Token"]
    for path in ("/os-hypervisors/detail", "/os-services", "/os-availability-zone/detail"):
        r = nova(nube, path, token)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["forbidden"]["code"] == 403 and "Policy" in r.json()["forbidden"]["message"]
    zones = nova(nube, "/os-availability-zone", token).json()["availabilityZoneInfo"]
    assert zones == [{"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nube]:
    server = Nube(tmp_path_factory.mktemp("nube-nolibvirt") / "data",
                  extra_env={"NUBE_LIBVIRT_URI": "qemu+unix:///system?socket=/nonexistent/nb-libvirt"})  # fmt: skip
    server.start()
    yield server
    server.stop()


def test_without_libvirt_the_host_and_its_service_are_down(unreachable: Nube) -> None:
    env = unreachable.env()
    (hyp,) = cli(env, "hypervisor", "list", "-f", "json")
    assert hyp["State"] == "down"
    (svc,) = cli(env, "compute", "service", "list", "-f", "json")
    assert svc["State"] == "down" and svc["Updated At"] is None
    rows = cli(env, "availability", "zone", "list", "--compute", "--long", "-f", "json")
    assert {r["Zone Status"] for r in rows} == {"not available"}
    assert any(r["Service Status"].startswith("enabled XXX") for r in rows)

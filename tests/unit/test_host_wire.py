"""The host's views per microversion (pure functions) and the Hosts service on libvirt's test
driver (test:///default, a real libvirt connection with a built-in host and one running domain)."""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from pathlib import Path

import pytest

from appliance.compute import host_wire as wire
from appliance.compute.hosts import Disk, Hosts, HostStatus
from appliance.compute.hypervisor import HostInfo, Hypervisor, cpu_info
from appliance.compute.migrations import migrations
from appliance.context import Context
from appliance.db import migrate, open_db
from appliance.errors import Forbidden

CAPS = """<capabilities><host><uuid>x</uuid><cpu><arch>x86_64</arch><model>kvm64</model>
<vendor>AMD</vendor><topology sockets='1' dies='1' cores='2' threads='1'/>
<feature name='vme'/><feature name='avx'/></cpu></host></capabilities>"""

INFO = HostInfo(2, 4096, 1, 256, 1, "QEMU", 7002022, 9000000, cpu_info(CAPS))


def status(up: bool = True, info: HostInfo | None = INFO) -> HostStatus:
    return HostStatus(up, "" if up else "no", info, "2026-01-01T00:00:00.000000", Disk(100, 40, 60),
                      0, " 10:00:00 up 1:00,  0 users,  load average: 0.1, 0.2, 0.3", "10.0.0.1",
                      str(uuid.uuid4()), str(uuid.uuid4()), ())  # fmt: skip


def test_cpu_info_follows_novas_libvirt_driver() -> None:
    assert cpu_info(CAPS) == {
        "arch": "x86_64", "model": "kvm64", "vendor": "AMD",
        "topology": {"sockets": 1, "cores": 2, "threads": 1}, "features": ["avx", "vme"],
    }  # fmt: skip


def test_before_2_53_the_ids_are_integers_and_cpu_info_a_string_before_2_28() -> None:
    old = wire.hypervisor_json(status(), (2, 27), detail=True)
    assert old["id"] == 1 and old["service"]["id"] == 1
    assert json.loads(old["cpu_info"])["arch"] == "x86_64"
    assert wire.hypervisor_json(status(), (2, 28), detail=True)["cpu_info"]["vendor"] == "AMD"


def test_from_2_53_the_ids_are_uuids() -> None:
    st = status()
    body = wire.hypervisor_json(st, (2, 53), detail=True)
    assert body["id"] == st.hypervisor_id and body["service"]["id"] == st.service_id


def test_2_88_drops_the_usage_fields_and_adds_the_uptime() -> None:
    body = wire.hypervisor_json(status(), (2, 88), detail=True)
    assert not {"vcpus", "memory_mb", "running_vms", "cpu_info"} & set(body)
    assert "load average" in body["uptime"]
    before = wire.hypervisor_json(status(), (2, 87), detail=True)
    assert (before["vcpus_used"], before["free_ram_mb"]) == (1, 3840) and "uptime" not in before


def test_with_servers_gives_an_empty_list_from_2_75() -> None:
    assert wire.hypervisor_json(status(), (2, 75), False, with_servers=True)["servers"] == []
    assert "servers" not in wire.hypervisor_json(status(), (2, 74), False, with_servers=True)


def test_a_down_host_is_down_in_every_view() -> None:
    st = status(up=False)
    assert wire.hypervisor_json(st, (2, 96), detail=False)["state"] == "down"
    assert wire.service_json(st, (2, 96))["state"] == "down"
    zone = wire.zones_json(False, st)["availabilityZoneInfo"][0]
    assert zone["zoneState"] == {"available": False}
    assert zone["hosts"]["nube"]["nova-compute"]["available"] is False


def test_forced_down_appears_at_2_11() -> None:
    assert "forced_down" not in wire.service_json(status(), (2, 10))
    assert wire.service_json(status(), (2, 11))["forced_down"] is False


def _hosts(uri: str) -> Hosts:
    db = open_db(None)
    migrate(db, [migrations])
    return Hosts(db, Hypervisor(uri), Path(tempfile.gettempdir()), uuid.uuid4().hex, "127.0.0.1")


ADMIN = Context("u", "admin", "default", frozenset({"admin", "member"}), "p")
MEMBER = Context("u", "alice", "default", frozenset({"member"}), "p")


def test_hosts_reads_libvirt_and_refuses_members() -> None:
    hosts = _hosts("test:///default")
    st = asyncio.run(hosts.status(ADMIN, "rule"))
    assert st.up and st.info is not None and st.info.vcpus == 16 and st.info.running == 1
    with pytest.raises(Forbidden, match="rule"):
        asyncio.run(hosts.status(MEMBER, "rule"))


def test_hosts_without_libvirt_is_down_with_libvirts_message() -> None:
    hosts = _hosts("qemu+unix:///system?socket=/nonexistent/nb-libvirt")
    st = asyncio.run(hosts.status(ADMIN, "rule"))
    assert not st.up and st.info is None and st.seen_at is None and "nonexistent" in st.error

"""Two real nube-tiny guests on one Nube network: each gets its port's address by DHCP from the
network's dnsmasq, and answers HTTP on it from inside the DHCP namespace. Deleting the servers and
the network leaves no link, namespace or dnsmasq with this Nube's prefix."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.api.harness import Nube, Tenant, make_tenant
from tests.api.harness import openstack as cli
from tests.api.test_compute import REASON, console, image, show, wait_for, wait_status
from tests.api.test_network import dnsmasqs, eventually, kernel_names, prefix

__all__ = ["image"]  # the module-scoped fixture that imports nube-tiny

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture(scope="module")
def carol(nube: Nube) -> Tenant:
    return make_tenant(nube, "netvm")


@pytest.fixture(scope="module")
def two_vms(
    nube: Nube, carol: Tenant, image: str
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    env = carol.env(nube)
    cli(env, "network", "create", "vmnet")
    sub = cli(env, "subnet", "create", "--network", "vmnet", "--subnet-range", "10.30.0.0/24", "vmsub",
              "-f", "json")  # fmt: skip
    made = []
    try:
        for name in ("web1", "web2"):
            made.append(cli(env, "server", "create", "--image", image, "--flavor", "m1.nano", "--network",
                            "vmnet", name, "-f", "json"))  # fmt: skip
        yield sub, made
    finally:
        for server in made:
            subprocess.run([*_os(), "server", "delete", "--wait", server["id"]], env=env, capture_output=True,
                           timeout=180)  # fmt: skip
        cli(env, "network", "delete", "vmnet", check=False)


def _os() -> list[str]:
    from tests.api.harness import BIN

    return [str(BIN / "openstack")]


def test_servers_on_a_network_get_their_ports_addresses_by_dhcp(
    nube: Nube, carol: Tenant, two_vms: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    _, servers = two_vms
    for server in servers:
        shown = wait_status(nube, carol, server["id"], "ACTIVE")
        (addr,) = shown["addresses"]["vmnet"]
        assert addr["OS-EXT-IPS:type"] == "fixed"
        assert addr["OS-EXT-IPS-MAC:mac_addr"].startswith("fa:16:3e:")
        assert addr["addr"].startswith("10.30.0.")
        line = wait_for(
            lambda sid=server["id"]: re.search(r"NUBE-TINY READY hostname=(\S+) ip=(\S+)", console(nube, carol, sid)),
            what=f"READY of {server['name']}",
        )  # fmt: skip
        assert line.group(2) == addr["addr"], line.group(0)


def http_from(namespace: str, ip: str) -> str:
    """GET / from inside a namespace with a timeout (busybox wget -T segfaults here: host-notes §4)."""
    code = (
        f"import urllib.request as u; print(u.urlopen('http://{ip}/', timeout=4).read().decode())"
    )
    result = subprocess.run(["ip", "netns", "exec", namespace, "/usr/bin/python3", "-c", code],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    return (
        result.stdout.strip()
        if result.returncode == 0
        else f"failed: {result.stderr.strip()[-200:]}"
    )


def test_each_server_answers_http_from_the_dhcp_namespace_once_a_rule_allows_it(
    nube: Nube, carol: Tenant, two_vms: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    sub, servers = two_vms
    namespace = f"{prefix(nube)}-dhcp-{sub['id']}"
    cli(carol.env(nube), "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "80",
        "--remote-ip", "0.0.0.0/0", "default")  # fmt: skip
    for server in servers:
        ip = show(nube, carol, server["id"])["addresses"]["vmnet"][0]["addr"]
        wait_for(lambda ip=ip, name=server["name"]: http_from(namespace, ip).startswith(name), timeout=60,
                 what=f"HTTP from {server['name']}")  # fmt: skip
        assert http_from(namespace, ip).split() == [server["name"], server["id"]]


def test_server_ports_are_guarded_against_spoofing_in_a_bridge_table(
    nube: Nube, carol: Tenant, two_vms: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    _, servers = two_vms
    table = subprocess.run(["nft", "list", "table", "bridge", f"{prefix(nube)}_as"], capture_output=True,
                           text=True).stdout  # fmt: skip
    for server in servers:
        (addr,) = show(nube, carol, server["id"])["addresses"]["vmnet"]
        assert f"ether saddr != {addr['OS-EXT-IPS-MAC:mac_addr']} drop" in table


def test_the_default_group_alone_blocks_http_from_outside_the_group(
    nube: Nube, carol: Tenant, two_vms: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    sub, servers = two_vms
    env = carol.env(nube)
    namespace = f"{prefix(nube)}-dhcp-{sub['id']}"
    for rule in cli(env, "security", "group", "rule", "list", "--protocol", "tcp", "-f", "json"):
        cli(env, "security", "group", "rule", "delete", rule["ID"])
    ip = show(nube, carol, servers[0]["id"])["addresses"]["vmnet"][0]["addr"]
    wait_for(
        lambda: http_from(namespace, ip).startswith("failed"), timeout=30, what="HTTP to be blocked"
    )


def test_server_create_puts_its_security_groups_on_its_port(
    nube: Nube, carol: Tenant, two_vms: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    env = carol.env(nube)
    group = cli(env, "security", "group", "create", "web", "-f", "json")
    server = cli(env, "server", "create", "--image", "nube-tiny", "--flavor", "m1.nano", "--network", "vmnet",
                 "--security-group", "web", "web3", "-f", "json")  # fmt: skip
    try:
        (port,) = cli(env, "port", "list", "--server", server["id"], "--long", "-f", "json")
        assert port["Security Groups"] == [group["id"]]
    finally:
        subprocess.run([*_os(), "server", "delete", "--wait", server["id"]], env=env, capture_output=True,
                       timeout=180)  # fmt: skip
    left = requests.get(f"{nube.url}/networking/v2.0/ports?device_id={server['id']}", headers=carol.headers(nube),
                        timeout=10).json()["ports"]  # fmt: skip
    assert left == []
    cli(env, "security", "group", "delete", "web")


def test_a_floating_ip_reaches_a_server_from_an_outside_namespace(
    nube: Nube, carol: Tenant, two_vms: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    env, admin = carol.env(nube), nube.env()
    _, servers = two_vms
    ext = cli(admin, "network", "create", "--external", "ext", "-f", "json")
    cli(admin, "subnet", "create", "--network", "ext", "--subnet-range", "192.0.2.0/24", "--no-dhcp",
        "--gateway", "192.0.2.1", "ext-sub")  # fmt: skip
    outside, veth = f"{prefix(nube)}x-out", f"{prefix(nube)}xo"
    fip: dict[str, Any] = {}
    try:
        cli(env, "router", "create", "gw")
        cli(env, "router", "add", "subnet", "gw", "vmsub")
        cli(env, "router", "set", "--external-gateway", "ext", "gw")
        fip = cli(env, "floating", "ip", "create", "ext", "-f", "json")
        (port,) = cli(env, "port", "list", "--server", servers[0]["id"], "-f", "json")
        cli(env, "floating", "ip", "set", "--port", port["ID"], fip["id"])
        cli(env, "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "80",
            "--remote-ip", "0.0.0.0/0", "default")  # fmt: skip
        # "Outside" is a namespace of this test on the external network's bridge, at its gateway.
        bridge = f"{prefix(nube)}b{ext['id'].replace('-', '')[:8]}"
        for command in (["ip", "netns", "add", outside],
                        ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", outside],
                        ["ip", "link", "set", veth, "master", bridge, "up"],
                        ["ip", "netns", "exec", outside, "ip", "addr", "add", "192.0.2.1/24", "dev", "eth0"],
                        ["ip", "netns", "exec", outside, "ip", "link", "set", "eth0", "up"]):  # fmt: skip
            subprocess.run(command, check=True, capture_output=True)
        address = fip["floating_ip_address"]
        wait_for(lambda: http_from(outside, address).startswith(servers[0]["name"]), timeout=60,
                 what="HTTP through the floating IP")  # fmt: skip
        shown = cli(env, "floating", "ip", "show", fip["id"], "-f", "json")
        assert shown["port_id"] == port["ID"] and shown["status"] == "ACTIVE"
    finally:
        subprocess.run(["ip", "link", "delete", veth], capture_output=True)
        subprocess.run(["ip", "netns", "delete", outside], capture_output=True)
        if fip:
            cli(env, "floating", "ip", "delete", fip["id"], check=False)
        cli(env, "router", "unset", "--external-gateway", "gw", check=False)
        cli(env, "router", "remove", "subnet", "gw", "vmsub", check=False)
        cli(env, "router", "delete", "gw", check=False)
        cli(admin, "network", "delete", "ext", check=False)


def domain_macs(server_id: str, inactive: bool = False) -> set[str]:
    args = [
        "virsh",
        "-c",
        "qemu:///system",
        "dumpxml",
        *(["--inactive"] if inactive else []),
        f"nube-{server_id}",
    ]
    xml = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"<mac address='([0-9a-f:]+)'", xml))


def test_a_port_is_hot_plugged_into_a_running_server_and_out_again(
    nube: Nube, carol: Tenant, two_vms: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    env = carol.env(nube)
    _, servers = two_vms
    server = servers[1]
    cli(env, "network", "create", "side")
    cli(env, "subnet", "create", "--network", "side", "--subnet-range", "10.31.0.0/24", "side-sub")
    port = cli(env, "port", "create", "--network", "side", "extra", "-f", "json")
    try:
        # Another project cannot plug anything into this server: it cannot even see it.
        other = make_tenant(nube, "netvm-other")
        refused = cli(
            other.env(nube), "server", "add", "port", server["id"], port["id"], check=False
        )
        assert refused.returncode != 0 and "No Server found" in refused.stderr
        cli(env, "server", "add", "port", server["id"], port["id"])
        shown = cli(env, "port", "show", port["id"], "-f", "json")
        assert shown["device_id"] == server["id"] and shown["device_owner"] == "compute:nova"
        assert port["mac_address"] in domain_macs(server["id"])
        assert port["mac_address"] in domain_macs(server["id"], inactive=True)
        addresses = show(nube, carol, server["id"])["addresses"]
        assert addresses["side"][0]["addr"] == shown["fixed_ips"][0]["ip_address"]
        tap = f"{prefix(nube)}t{port['id'].replace('-', '')[:8]}"
        link = subprocess.run(
            ["ip", "-o", "link", "show", tap], capture_output=True, text=True
        ).stdout
        assert f"master {prefix(nube)}b" in link
        token = carol.headers(nube)["X-Auth-Token"]
        listed = requests.get(f"{nube.url}/compute/v2.1/servers/{server['id']}/os-interface",
                              headers={"X-Auth-Token": token}, timeout=10).json()["interfaceAttachments"]  # fmt: skip
        assert port["id"] in {i["port_id"] for i in listed} and len(listed) == 2
        cli(env, "server", "remove", "port", server["id"], port["id"])
        assert port["mac_address"] not in domain_macs(server["id"])
        assert port["mac_address"] not in domain_macs(server["id"], inactive=True)
        assert cli(env, "port", "show", port["id"], "-f", "json")["device_id"] == ""
        assert "side" not in show(nube, carol, server["id"])["addresses"]
        assert subprocess.run(["ip", "link", "show", tap], capture_output=True).returncode != 0
    finally:
        cli(env, "port", "delete", port["id"], check=False)
        cli(env, "network", "delete", "side", check=False)


def test_cleanup_leaves_no_link_namespace_or_dnsmasq(nube: Nube, carol: Tenant) -> None:
    env = carol.env(nube)
    for server in cli(env, "server", "list", "-f", "json"):
        subprocess.run([*_os(), "server", "delete", "--wait", server["ID"]], env=env, capture_output=True,
                       timeout=180)  # fmt: skip
    cli(env, "network", "delete", "vmnet", check=False)
    assert eventually(lambda: kernel_names(nube) == set() and dnsmasqs(nube) == [])
    assert cli(env, "port", "list", "-f", "json") == []
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"{prefix(nube)}_sg" not in tables and f"{prefix(nube)}_as" not in tables

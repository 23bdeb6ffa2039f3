"""Networking through the real `openstack` CLI and raw HTTP: networks, subnets, ports, security
groups, isolation between projects, Neutron error bodies, and the Linux datapath each network gets
(a bridge, a DHCP namespace with dnsmasq) and loses again on delete."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.harness import Nube, Tenant, make_tenant
from tests.api.harness import openstack as cli


def prefix(nube: Nube) -> str:
    return "nb" + (nube.data_dir / "cloud-id").read_text().strip()[:4]


def kernel_names(nube: Nube) -> set[str]:
    """Every link and namespace carrying this Nube's prefix (empty when not root)."""
    if os.geteuid() != 0:
        return set()
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()}
    spaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names |= {line.split()[0] for line in spaces.splitlines() if line.strip()}
    return {n for n in names if n.startswith(prefix(nube))}


def dnsmasqs(nube: Nube) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith("dnsmasq") and str(nube.data_dir / "dhcp") in cmdline:
                found.append(proc.name)
    return found


def eventually(predicate: Any, timeout: float = 20) -> bool:
    """The datapath converges in a job after the API answers: poll for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def neutron(nube: Nube, path: str) -> str:
    return f"{nube.url}/networking/v2.0{path}"


@pytest.fixture(scope="module")
def alice(nube: Nube) -> Tenant:
    return make_tenant(nube, "neta")


@pytest.fixture(scope="module")
def bob(nube: Nube) -> Tenant:
    return make_tenant(nube, "netb")


@pytest.fixture
def net1(nube: Nube, alice: Tenant) -> Iterator[dict[str, Any]]:
    env = alice.env(nube)
    net = cli(env, "network", "create", "net1", "-f", "json")
    yield net
    cli(env, "network", "delete", net["id"], check=False)


def test_version_and_resources_documents(nube: Nube, alice: Tenant) -> None:
    r = requests.get(f"{nube.url}/networking/", timeout=5)
    assert r.status_code == 200
    assert r.json()["versions"][0]["id"] == "v2.0"
    r = requests.get(f"{nube.url}/networking/v2.0/", headers=alice.headers(nube), timeout=5)
    assert {x["collection"] for x in r.json()["resources"]} >= {"networks", "subnets", "ports"}


def test_unknown_extension_is_404_in_neutrons_shape(nube: Nube, alice: Tenant) -> None:
    r = requests.get(neutron(nube, "/extensions/external-gateway-multihoming"), headers=alice.headers(nube),
                     timeout=5)  # fmt: skip
    assert r.status_code == 404
    assert r.json()["NeutronError"]["type"] == "ExtensionNotFound"
    r = requests.get(neutron(nube, "/extensions"), headers=alice.headers(nube), timeout=5)
    assert "security-group" in {e["alias"] for e in r.json()["extensions"]}


def test_cli_network_subnet_port_create_list_show_delete(
    nube: Nube, alice: Tenant, net1: dict[str, Any]
) -> None:
    env = alice.env(nube)
    sub = cli(env, "subnet", "create", "--network", "net1", "--subnet-range", "10.20.0.0/24", "sub1",
              "-f", "json")  # fmt: skip
    assert sub["gateway_ip"] == "10.20.0.1"
    assert [n["Name"] for n in cli(env, "network", "list", "-f", "json")] == ["net1"]
    assert cli(env, "subnet", "list", "-f", "json")[0]["Subnet"] == "10.20.0.0/24"
    port = cli(env, "port", "create", "--network", "net1", "p1", "-f", "json")
    assert port["mac_address"].startswith("fa:16:3e:")
    shown = cli(env, "port", "show", "p1", "-f", "json")
    assert shown["fixed_ips"][0]["ip_address"] == "10.20.0.3"
    names = [p["Name"] for p in cli(env, "port", "list", "-f", "json")]
    assert "p1" in names
    cli(env, "port", "delete", "p1")
    cli(env, "subnet", "delete", "sub1")
    cli(env, "network", "delete", "net1")
    assert cli(env, "network", "list", "-f", "json") == []


def test_another_project_sees_nothing_and_gets_404(
    nube: Nube, alice: Tenant, bob: Tenant, net1: dict[str, Any]
) -> None:
    assert cli(bob.env(nube), "network", "list", "-f", "json") == []
    r = requests.get(neutron(nube, f"/networks/{net1['id']}"), headers=bob.headers(nube), timeout=5)
    assert r.status_code == 404
    assert r.json()["NeutronError"]["type"] == "NetworkNotFound"
    r = requests.delete(
        neutron(nube, f"/networks/{net1['id']}"), headers=bob.headers(nube), timeout=5
    )
    assert r.status_code == 404


def test_default_security_group_is_listed(nube: Nube, alice: Tenant) -> None:
    groups = cli(alice.env(nube), "security", "group", "list", "-f", "json")
    assert [g["Name"] for g in groups] == ["default"]


def test_port_list_honours_fields_limit_and_marker(
    nube: Nube, alice: Tenant, net1: dict[str, Any]
) -> None:
    h = alice.headers(nube)
    for i in range(3):
        requests.post(neutron(nube, "/ports"), json={"port": {"network_id": net1["id"], "name": f"q{i}"}},
                      headers=h, timeout=5).raise_for_status()  # fmt: skip
    r = requests.get(neutron(nube, "/ports?fields=id&fields=name&limit=2"), headers=h, timeout=5)
    body = r.json()
    assert [set(p) for p in body["ports"]] == [{"id", "name"}] * 2
    assert body["ports_links"][0]["rel"] == "next"
    rest = requests.get(body["ports_links"][0]["href"], headers=h, timeout=5).json()["ports"]
    assert len(rest) == 1
    for p in requests.get(neutron(nube, "/ports"), headers=h, timeout=5).json()["ports"]:
        requests.delete(neutron(nube, f"/ports/{p['id']}"), headers=h, timeout=5)


def test_network_quota_over_limit_is_409(nube: Nube) -> None:
    t = make_tenant(nube, "netq")
    admin = {"X-Auth-Token": nube.token()}
    service = requests.get(
        f"{nube.auth_url}/v3/services?type=network", headers=admin, timeout=5
    ).json()
    body = {"limits": [{"project_id": t.project_id, "service_id": service["services"][0]["id"],
                        "resource_name": "network", "resource_limit": 0}]}  # fmt: skip
    assert (
        requests.post(f"{nube.auth_url}/v3/limits", json=body, headers=admin, timeout=5).status_code
        == 201
    )
    r = requests.post(neutron(nube, "/networks"), json={"network": {"name": "x"}}, headers=t.headers(nube),
                      timeout=5)  # fmt: skip
    assert r.status_code == 409
    assert r.json()["NeutronError"]["type"] == "OverQuota"


@pytest.mark.skipif(os.geteuid() != 0, reason="the datapath needs root")
def test_a_subnet_gets_a_bridge_and_a_dhcp_namespace_and_delete_removes_them(
    nube: Nube, alice: Tenant
) -> None:
    env = alice.env(nube)
    assert kernel_names(nube) == set()
    net = cli(env, "network", "create", "dp", "-f", "json")
    sub = cli(
        env,
        "subnet",
        "create",
        "--network",
        "dp",
        "--subnet-range",
        "10.21.0.0/24",
        "dps",
        "-f",
        "json",
    )
    bridge = f"{prefix(nube)}b{net['id'].replace('-', '')[:8]}"
    namespace = f"{prefix(nube)}-dhcp-{sub['id']}"
    assert eventually(
        lambda: {bridge, namespace} <= kernel_names(nube) and len(dnsmasqs(nube)) == 1
    )
    cli(env, "network", "delete", "dp")
    assert eventually(lambda: kernel_names(nube) == set() and dnsmasqs(nube) == [])


def _sweep(nube: Nube) -> None:
    """Teardown of last resort: whatever this Nube left in the kernel, by its own names and pidfiles."""
    for pid in dnsmasqs(nube):
        os.kill(int(pid), 15)
    for name in kernel_names(nube):
        if "-dhcp-" in name:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        else:
            subprocess.run(["ip", "link", "delete", name], capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the datapath needs root")
def test_restart_rebuilds_the_datapath_and_removes_prefixed_leftovers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    own = Nube(tmp_path_factory.mktemp("netrestart") / "data")
    own.start()
    try:
        t = make_tenant(own, "netr")
        h = t.headers(own)
        net = requests.post(
            neutron(own, "/networks"), json={"network": {"name": "r"}}, headers=h, timeout=5
        )
        net_id = net.json()["network"]["id"]
        sub = requests.post(neutron(own, "/subnets"), headers=h, timeout=5,
                            json={"subnet": {"network_id": net_id, "cidr": "10.40.0.0/24", "ip_version": 4}})  # fmt: skip
        sub_id = sub.json()["subnet"]["id"]
        bridge = f"{prefix(own)}b{net_id.replace('-', '')[:8]}"
        assert eventually(lambda: bridge in kernel_names(own) and len(dnsmasqs(own)) == 1)
        assert own.stop() == 0
        # A clean stop leaves the datapath up; now break it while Nube is down.
        assert bridge in kernel_names(own) and len(dnsmasqs(own)) == 1
        os.kill(int(dnsmasqs(own)[0]), 15)
        subprocess.run(["ip", "link", "delete", bridge], check=True)
        stray = f"{prefix(own)}bdeadbeef"
        subprocess.run(["ip", "link", "add", stray, "type", "bridge"], check=True)
        assert eventually(lambda: dnsmasqs(own) == [])
        own.start()
        names = kernel_names(own)
        assert bridge in names and f"{prefix(own)}-dhcp-{sub_id}" in names and stray not in names
        assert len(dnsmasqs(own)) == 1
        r = requests.delete(neutron(own, f"/networks/{net_id}"), headers=t.headers(own), timeout=5)
        assert r.status_code == 204
        assert eventually(lambda: kernel_names(own) == set() and dnsmasqs(own) == [])
    finally:
        if own.proc is not None:
            own.stop()
        _sweep(own)


@pytest.mark.skipif(os.geteuid() != 0, reason="the datapath needs root")
def test_cli_router_joins_two_subnets_in_a_forwarding_namespace(nube: Nube, alice: Tenant) -> None:
    env = alice.env(nube)
    for n, cidr in (("ra", "10.60.0.0/24"), ("rb", "10.61.0.0/24")):
        cli(env, "network", "create", n)
        cli(env, "subnet", "create", "--network", n, "--subnet-range", cidr, f"{n}-sub")
    router = cli(env, "router", "create", "r1", "-f", "json")
    cli(env, "router", "add", "subnet", "r1", "ra-sub")
    cli(env, "router", "add", "subnet", "r1", "rb-sub")
    namespace = f"{prefix(nube)}-router-{router['id']}"

    def addresses() -> str:
        return subprocess.run(["ip", "netns", "exec", namespace, "ip", "-4", "-o", "addr"], capture_output=True,
                              text=True).stdout  # fmt: skip

    assert eventually(lambda: "10.60.0.1/24" in addresses() and "10.61.0.1/24" in addresses())
    forward = subprocess.run(["ip", "netns", "exec", namespace, "cat", "/proc/sys/net/ipv4/ip_forward"],
                             capture_output=True, text=True).stdout  # fmt: skip
    assert forward.strip() == "1"
    # ra's DHCP namespace reaches rb's through the router (each given a route via its gateway).
    spaces = {}
    for n, other in (("ra", "10.61.0.0/24"), ("rb", "10.60.0.0/24")):
        sub = cli(env, "subnet", "show", f"{n}-sub", "-f", "json")
        spaces[n] = f"{prefix(nube)}-dhcp-{sub['id']}"
        route = [
            "ip",
            "netns",
            "exec",
            spaces[n],
            "ip",
            "route",
            "add",
            other,
            "via",
            sub["gateway_ip"],
        ]
        subprocess.run(route, check=True)
    ping = subprocess.run(["ip", "netns", "exec", spaces["ra"], "busybox", "ping", "-c", "1", "-W", "3", "10.61.0.2"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert ping.returncode == 0, ping.stdout + ping.stderr
    shown = cli(env, "router", "show", "r1", "-f", "json")
    assert len(shown["interfaces_info"]) == 2
    cli(env, "router", "remove", "subnet", "r1", "ra-sub")
    cli(env, "router", "remove", "subnet", "r1", "rb-sub")
    cli(env, "router", "delete", "r1")
    cli(env, "network", "delete", "ra", "rb")
    assert eventually(lambda: kernel_names(nube) == set() and dnsmasqs(nube) == [])


def test_cli_quota_set_and_show_networks_through_keystone_limits(nube: Nube) -> None:
    t = make_tenant(nube, "netqs")
    admin = nube.env()
    cli(admin, "quota", "set", "--networks", "3", "--ports", "7", t.project_id)
    rows = cli(admin, "quota", "show", t.project_id, "-f", "json")
    shown = {r["Resource"]: r["Limit"] for r in rows}  # OSC 7+: one row per resource
    assert shown["networks"] == 3 and shown["ports"] == 7, rows
    h = t.headers(nube)
    detail = requests.get(
        neutron(nube, f"/quotas/{t.project_id}/details"), headers=h, timeout=5
    ).json()
    assert detail["quota"]["network"] == {"limit": 3, "used": 0, "reserved": 0}


def test_port_security_off_means_no_groups_and_no_guard(
    nube: Nube, alice: Tenant, bob: Tenant
) -> None:
    env, admin = alice.env(nube), nube.env()
    net = cli(env, "network", "create", "--disable-port-security", "open", "-f", "json")
    try:
        assert net["port_security_enabled"] is False
        cli(
            env,
            "subnet",
            "create",
            "--network",
            "open",
            "--subnet-range",
            "10.70.0.0/24",
            "open-sub",
        )
        refused = cli(
            env,
            "port",
            "create",
            "--network",
            "open",
            "--security-group",
            "default",
            "x",
            check=False,
        )
        assert refused.returncode != 0 and "Port security must be enabled" in refused.stderr
        port = cli(env, "port", "create", "--network", "open", "p-open", "-f", "json")
        assert port["port_security_enabled"] is False and port["security_group_ids"] == []
        # A server port without port security gets no anti-spoofing chain (and no filter).
        cli(
            admin,
            "port",
            "set",
            "--device-owner",
            "compute:nova",
            "--device",
            "vm-x",
            port["id"],
        )
        assert eventually(lambda: port["mac_address"] not in bridge_table(nube))
        # Turning it on gives the port the default group and the guard; another project can't touch it.
        assert (
            cli(
                bob.env(nube), "port", "set", "--enable-port-security", port["id"], check=False
            ).returncode
            != 0
        )
        cli(env, "port", "set", "--enable-port-security", "--security-group", "default", port["id"])
        assert eventually(
            lambda: f"ether saddr != {port['mac_address']} drop" in bridge_table(nube)
        )
        refused = cli(env, "port", "set", "--disable-port-security", port["id"], check=False)
        assert refused.returncode != 0 and "security group" in refused.stderr
    finally:
        for p in cli(admin, "port", "list", "--network", net["id"], "-f", "json"):
            cli(admin, "port", "delete", p["ID"], check=False)
        cli(env, "network", "delete", "open", check=False)


def test_allowed_address_pairs_and_fixed_ip_changes(nube: Nube, alice: Tenant) -> None:
    env, admin = alice.env(nube), nube.env()
    cli(env, "network", "create", "pairs")
    try:
        cli(
            env,
            "subnet",
            "create",
            "--network",
            "pairs",
            "--subnet-range",
            "10.71.0.0/24",
            "pairs-sub",
        )
        port = cli(env, "port", "create", "--network", "pairs", "--allowed-address", "ip-address=10.71.0.128/28",
                   "--allowed-address", "ip-address=10.71.0.9,mac-address=fa:16:3e:00:00:09", "vip", "-f", "json")  # fmt: skip
        assert {(p["ip_address"], p["mac_address"]) for p in port["allowed_address_pairs"]} == {
            ("10.71.0.128/28", port["mac_address"]), ("10.71.0.9", "fa:16:3e:00:00:09")}  # fmt: skip
        cli(
            admin,
            "port",
            "set",
            "--device-owner",
            "compute:nova",
            "--device",
            "vm-y",
            port["id"],
        )
        # The guard lets the pairs' addresses and MACs out; the groups guard the pair addresses too.
        assert eventually(lambda: "10.71.0.128/28" in bridge_table(nube))
        assert "fa:16:3e:00:00:09" in bridge_table(nube)
        refused = cli(
            env,
            "port",
            "set",
            "--no-security-group",
            "--disable-port-security",
            port["id"],
            check=False,
        )
        assert refused.returncode != 0 and "address pairs" in refused.stderr
        cli(env, "port", "set", "--no-allowed-address", port["id"])
        assert cli(env, "port", "show", port["id"], "-f", "json")["allowed_address_pairs"] == []
        assert eventually(lambda: "10.71.0.128/28" not in bridge_table(nube))
        # Fixed IPs change in place: keep none, take a chosen one.
        cli(
            env,
            "port",
            "set",
            "--no-fixed-ip",
            "--fixed-ip",
            "subnet=pairs-sub,ip-address=10.71.0.50",
            port["id"],
        )
        shown = cli(env, "port", "show", port["id"], "-f", "json")
        assert [f["ip_address"] for f in shown["fixed_ips"]] == ["10.71.0.50"]
        taken = cli(env, "port", "create", "--network", "pairs", "--fixed-ip", "ip-address=10.71.0.60", "other",
                    "-f", "json")  # fmt: skip
        clash = cli(
            env, "port", "set", "--fixed-ip", "ip-address=10.71.0.60", port["id"], check=False
        )
        assert clash.returncode != 0 and "in use" in clash.stderr
        after = cli(env, "port", "show", port["id"], "-f", "json")["fixed_ips"]
        assert [f["ip_address"] for f in after] == ["10.71.0.50"]  # nothing half-done
        cli(env, "port", "delete", taken["id"])
    finally:
        for p in cli(admin, "port", "list", "--network", "pairs", "-f", "json"):
            cli(admin, "port", "delete", p["ID"], check=False)
        cli(env, "network", "delete", "pairs", check=False)


def bridge_table(nube: Nube) -> str:
    """This cloud's anti-spoofing table as nft lists it (the ruleset text when not root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to read nftables")
    done = subprocess.run(
        ["nft", "list", "table", "bridge", f"{prefix(nube)}_as"], capture_output=True, text=True
    )
    return done.stdout


def test_router_static_routes_snat_choice_and_subnet_host_routes(nube: Nube, alice: Tenant) -> None:
    env, admin = alice.env(nube), nube.env()
    cli(env, "network", "create", "rs")
    sub = cli(env, "subnet", "create", "--network", "rs", "--subnet-range", "10.62.0.0/24", "--host-route",
              "destination=10.90.0.0/16,gateway=10.62.0.254", "rs-sub", "-f", "json")  # fmt: skip
    ext = cli(admin, "network", "create", "--external", "rs-ext", "-f", "json")
    cli(admin, "subnet", "create", "--network", "rs-ext", "--subnet-range", "198.51.100.0/24", "--no-dhcp",
        "rs-ext-sub")  # fmt: skip
    router = cli(env, "router", "create", "rr", "-f", "json")
    namespace = f"{prefix(nube)}-router-{router['id']}"

    def in_router(*command: str) -> str:
        return subprocess.run(["ip", "netns", "exec", namespace, *command], capture_output=True,
                              text=True).stdout  # fmt: skip

    try:
        # DHCP hands out the subnet's host routes (option 121) beside the metadata route.
        args = (nube.data_dir / "dhcp" / sub["id"] / "args").read_text()
        assert "10.90.0.0/16,10.62.0.254" in args and "169.254.169.254/32," in args
        cli(env, "router", "add", "subnet", "rr", "rs-sub")
        cli(env, "router", "set", "--external-gateway", "rs-ext", "rr")
        refused = cli(env, "router", "set", "--route", "destination=10.91.0.0/24,gateway=192.0.2.7", "rr",
                      check=False)  # fmt: skip
        assert refused.returncode != 0 and "not connected" in refused.stderr
        cli(env, "router", "set", "--route", "destination=10.91.0.0/24,gateway=10.62.0.7", "rr")
        shown = cli(env, "router", "show", "rr", "-f", "json")
        assert shown["routes"] == [{"destination": "10.91.0.0/24", "nexthop": "10.62.0.7"}]
        if os.geteuid() == 0:
            assert eventually(
                lambda: "10.91.0.0/24 via 10.62.0.7" in in_router("ip", "-4", "route")
            )
            assert eventually(
                lambda: "snat to 198.51.100." in in_router("nft", "list", "table", "ip", "nube_nat")
            )
        # Only an admin turns SNAT off; then the subnets behind leave unNATed (floating IPs still work).
        denied = cli(
            env,
            "router",
            "set",
            "--external-gateway",
            "rs-ext",
            "--disable-snat",
            "rr",
            check=False,
        )
        assert denied.returncode != 0
        cli(admin, "router", "set", "--external-gateway", ext["id"], "--disable-snat", router["id"])
        shown = cli(env, "router", "show", "rr", "-f", "json")
        assert shown["external_gateway_info"]["enable_snat"] is False
        cli(env, "router", "unset", "--route", "destination=10.91.0.0/24,gateway=10.62.0.7", "rr")
        assert cli(env, "router", "show", "rr", "-f", "json")["routes"] == []
        if os.geteuid() == 0:
            assert eventually(lambda: "10.91.0.0/24" not in in_router("ip", "-4", "route"))
            assert eventually(
                lambda: "snat to" not in in_router("nft", "list", "table", "ip", "nube_nat")
            )
    finally:
        cli(env, "router", "unset", "--external-gateway", "rr", check=False)
        cli(env, "router", "remove", "subnet", "rr", "rs-sub", check=False)
        cli(env, "router", "delete", "rr", check=False)
        cli(env, "network", "delete", "rs", check=False)
        cli(admin, "network", "delete", "rs-ext", check=False)

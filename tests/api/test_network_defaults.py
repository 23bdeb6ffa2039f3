"""A fresh Nube's default networks, used the way a newcomer does: `public` gives the host an address,
`private` sits behind `router1`; a nube-tiny server on `private` reads its name and key from the
metadata service (no config drive), gets a floating IP and takes `ssh -i key` from the host itself.
A second project on the same CIDR, with a server on the very same address, stays apart and sees
only its own metadata. Deleting every Nube bridge, veth and namespace by hand, then restarting,
brings it all back (reconcile). Nothing of this cloud is left in the kernel afterwards."""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.harness import BIN, Nube, make_tenant, unused_cidr
from tests.api.harness import openstack as cli
from tests.api.test_compute import REASON, console, wait_for
from tests.api.test_network import dnsmasqs, kernel_names, prefix
from tests.api.test_network_vm import http_from

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

SSH = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
       "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
       "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]  # fmt: skip


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nube]:
    server = Nube(tmp_path_factory.mktemp("defaults") / "data",
                  extra_env={"NUBE_PUBLIC_CIDR": unused_cidr()})  # fmt: skip
    server.start()
    try:
        yield server
    finally:
        server.stop()
        done = subprocess.run([str(BIN / "nube"), "clear-datapath", "--data-dir", str(server.data_dir)],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def keyfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def ssh(key: Path, address: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SSH, "-i", str(key), f"root@{address}", command], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def default_group(env: dict[str, str], project: str) -> str:
    groups = cli(env, "security", "group", "list", "--project", project, "-f", "json")
    return next(g["ID"] for g in groups if g["Name"] == "default")


@pytest.fixture(scope="module")
def vm(cloud: Nube, keyfile: Path) -> Iterator[dict[str, Any]]:
    """The newcomer's server: admin project, `private` network, key pair, floating IP on `public`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    imported = subprocess.run([str(BIN / "nube"), "image", "import-default", "--data-dir", str(cloud.data_dir)],
                              env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert imported.returncode == 0, imported.stderr + imported.stdout
    admin = cloud.env()
    group = default_group(admin, "admin")
    for port in ("22", "80"):
        cli(
            admin,
            "security",
            "group",
            "rule",
            "create",
            "--protocol",
            "tcp",
            "--dst-port",
            port,
            group,
        )
    cli(admin, "keypair", "create", "--public-key", f"{keyfile}.pub", "mykey")
    server = cli(admin, "server", "create", "--image", "nube-tiny", "--flavor", "m1.nano", "--key-name", "mykey",
                 "--network", "private", "--wait", "vm-a", "-f", "json")  # fmt: skip
    fip = cli(admin, "floating", "ip", "create", "public", "-f", "json")
    cli(admin, "server", "add", "floating", "ip", server["id"], fip["floating_ip_address"])
    try:
        yield {**server, "fip": fip["floating_ip_address"]}
    finally:
        subprocess.run([str(BIN / "openstack"), "server", "delete", "--wait", server["id"]], env=admin,
                       capture_output=True, timeout=180)  # fmt: skip
        cli(admin, "floating", "ip", "delete", fip["id"], check=False)


def test_first_start_makes_public_private_and_router1(cloud: Nube) -> None:
    admin = cloud.env()
    cidr = cloud.extra_env["NUBE_PUBLIC_CIDR"]
    host = str(next(ipaddress.ip_network(cidr).hosts()))
    public = cli(admin, "network", "show", "public", "-f", "json")
    assert public["router:external"] is True
    subnet = cli(admin, "subnet", "show", "public-subnet", "-f", "json")
    assert (
        subnet["cidr"] == cidr and subnet["gateway_ip"] == host and subnet["enable_dhcp"] is False
    )
    router = cli(admin, "router", "show", "router1", "-f", "json")
    assert router["external_gateway_info"]["network_id"] == public["id"]
    private = cli(admin, "subnet", "show", "private-subnet", "-f", "json")
    assert private["cidr"] == "10.0.0.0/24"
    # The host itself holds the public gateway address on the public network's bridge.
    bridge = f"{prefix(cloud)}b{public['id'].replace('-', '')[:8]}"
    shown = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", bridge], capture_output=True,
                                      text=True, check=True).stdout)  # fmt: skip
    assert {(a["local"], a["prefixlen"]) for a in shown[0]["addr_info"]} == {(host, 24)}
    # Another project sees `public` (external networks are for everyone) but not `private`.
    other = make_tenant(cloud, "newbie")
    names = {n["Name"] for n in cli(other.env(cloud), "network", "list", "-f", "json")}
    assert "public" in names and "private" not in names
    denied = cli(other.env(cloud), "network", "delete", "public", check=False)
    assert denied.returncode != 0
    assert cli(admin, "network", "show", "public", "-f", "json")["id"] == public["id"]


def admin_console(cloud: Nube, server_id: str) -> str:
    r = requests.post(f"{cloud.url}/compute/v2.1/servers/{server_id}/action",
                      json={"os-getConsoleOutput": {}}, headers={"X-Auth-Token": cloud.token()}, timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    return str(r.json()["output"])


def test_the_guest_reads_its_name_from_the_metadata_service(
    cloud: Nube, vm: dict[str, Any]
) -> None:
    text = wait_for(lambda: (c := admin_console(cloud, vm["id"])) and "NUBE-TINY READY" in c and c,
                    what="READY on the console")  # fmt: skip
    assert "metadata from metadata service" in text
    assert "NUBE-TINY READY hostname=vm-a " in text


def test_ssh_from_the_host_through_the_floating_ip(
    cloud: Nube, vm: dict[str, Any], keyfile: Path
) -> None:
    done = wait_for(lambda: (r := ssh(keyfile, vm["fip"], "hostname")).returncode == 0 and r,
                    timeout=180, what="ssh through the floating IP")  # fmt: skip
    assert done.stdout.strip() == "vm-a"
    # Its HTTP answers the host through the floating IP too (port 80 is open in the group).
    page = requests.get(f"http://{vm['fip']}/", timeout=20).text
    assert page.split() == ["vm-a", vm["id"]]
    shown = cli(cloud.env(), "server", "show", vm["id"], "-f", "json")
    assert vm["fip"] in json.dumps(shown["addresses"])
    # The metadata service answers the guest with its own data, OpenStack and EC2 style.
    meta = ssh(
        keyfile, vm["fip"], "wget -qO- http://169.254.169.254/openstack/latest/meta_data.json"
    )
    assert json.loads(meta.stdout)["uuid"] == vm["id"]
    public = ssh(
        keyfile, vm["fip"], "wget -qO- http://169.254.169.254/latest/meta-data/public-ipv4"
    )
    assert public.stdout.strip() == vm["fip"]
    net = ssh(
        keyfile, vm["fip"], "wget -qO- http://169.254.169.254/openstack/latest/network_data.json"
    )
    assert json.loads(net.stdout)["networks"][0]["type"] == "ipv4_dhcp"


def test_a_spoofed_source_address_is_dropped(
    cloud: Nube, vm: dict[str, Any], keyfile: Path
) -> None:
    """From its own address the guest reaches router1; from an address it borrows, nothing gets
    through (the port's guard drops the IP packets and the ARP that would claim it)."""
    own = ssh(keyfile, vm["fip"], "ping -c 2 -W 3 10.0.0.1 >/dev/null && echo reached || echo lost")
    assert own.stdout.strip() == "reached"
    spoof = ssh(keyfile, vm["fip"], "ip addr add 10.0.0.99/24 dev eth0; "
                "ping -c 3 -W 3 -I 10.0.0.99 10.0.0.1 >/dev/null && echo reached || echo lost; "
                "ip addr del 10.0.0.99/24 dev eth0")  # fmt: skip
    assert spoof.stdout.strip() == "lost"
    again = ssh(
        keyfile, vm["fip"], "ping -c 2 -W 3 10.0.0.1 >/dev/null && echo reached || echo lost"
    )
    assert again.stdout.strip() == "reached"


@pytest.fixture
def host_http(cloud: Nube) -> Iterator[tuple[str, int]]:
    """An HTTP server of this test on the host's own address on `public` (the router's way out)."""
    address = str(next(ipaddress.ip_network(cloud.extra_env["NUBE_PUBLIC_CIDR"]).hosts()))

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello from the host\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((address, 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield address, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_egress_rules_decide_what_leaves_a_port_live(
    cloud: Nube, vm: dict[str, Any], keyfile: Path, host_http: tuple[str, int]
) -> None:
    admin = cloud.env()
    address, port_number = host_http
    # busybox timeout's TERM ends the ssh session too: answer "blocked" rather than an exit code.
    fetch = f"timeout 8 wget -qO- http://{address}:{port_number}/ || echo blocked"
    out = wait_for(lambda: (r := ssh(keyfile, vm["fip"], fetch)).stdout.startswith("hello") and r,
                   timeout=60, what="the host's HTTP from the guest")  # fmt: skip
    assert out.stdout == "hello from the host\n"  # out through router1's SNAT to the host
    (port,) = cli(admin, "port", "list", "--server", vm["id"], "-f", "json")
    tight = cli(admin, "security", "group", "create", "tight", "-f", "json")
    try:
        for rule in cli(admin, "security", "group", "rule", "list", tight["id"], "-f", "json"):
            if rule["Direction"] == "egress":
                cli(admin, "security", "group", "rule", "delete", rule["ID"])
        cli(
            admin,
            "security",
            "group",
            "rule",
            "create",
            "--protocol",
            "tcp",
            "--dst-port",
            "22",
            tight["id"],
        )
        cli(
            admin, "port", "set", "--no-security-group", "--security-group", tight["id"], port["ID"]
        )
        # SSH still comes in (ingress 22, replies are established); nothing new goes out.
        assert wait_for(lambda: ssh(keyfile, vm["fip"], fetch).stdout.endswith("blocked\n"), timeout=30,
                        what="egress blocked")  # fmt: skip
        assert ssh(keyfile, vm["fip"], "hostname").stdout.strip() == "vm-a"
        cli(admin, "security", "group", "rule", "create", "--egress", "--protocol", "tcp", "--dst-port",
            str(port_number), "--remote-ip", f"{address}/32", tight["id"])  # fmt: skip
        out = wait_for(lambda: (r := ssh(keyfile, vm["fip"], fetch)).stdout.startswith("hello") and r,
                       timeout=30, what="egress allowed again")  # fmt: skip
        assert out.stdout == "hello from the host\n"
    finally:
        group = default_group(admin, "admin")
        cli(admin, "port", "set", "--no-security-group", "--security-group", group, port["ID"])
        cli(admin, "security", "group", "delete", tight["id"], check=False)


def test_overlapping_cidrs_stay_apart_and_metadata_is_per_project(
    cloud: Nube, vm: dict[str, Any], keyfile: Path
) -> None:
    other = make_tenant(cloud, "overlap")
    env = other.env(cloud)
    shown = requests.get(f"{cloud.url}/compute/v2.1/servers/{vm['id']}", headers={"X-Auth-Token": cloud.token()},
                         timeout=10).json()["server"]  # fmt: skip
    (address,) = [
        a["addr"] for a in shown["addresses"]["private"] if a["OS-EXT-IPS:type"] == "fixed"
    ]
    assert {
        a["addr"] for a in shown["addresses"]["private"] if a["OS-EXT-IPS:type"] == "floating"
    } == {vm["fip"]}
    cli(env, "network", "create", "mine")
    sub = cli(env, "subnet", "create", "--network", "mine", "--subnet-range", "10.0.0.0/24", "mine-sub",
              "-f", "json")  # fmt: skip
    port = cli(env, "port", "create", "--network", "mine", "--fixed-ip", f"subnet=mine-sub,ip-address={address}",
               "same-address", "-f", "json")  # fmt: skip
    cli(env, "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "80",
        default_group(env, other.project_id))  # fmt: skip
    server = cli(env, "server", "create", "--image", "nube-tiny", "--flavor", "m1.nano", "--nic",
                 f"port-id={port['id']}", "--wait", "vm-b", "-f", "json")  # fmt: skip
    try:
        text = wait_for(lambda: (c := console(cloud, other, server["id"])) and "NUBE-TINY READY" in c and c,
                        what="READY on vm-b's console")  # fmt: skip
        # Same address as vm-a, its own metadata: the name comes from its own server.
        assert f"NUBE-TINY READY hostname=vm-b ip={address}" in text
        assert "metadata from metadata service" in text
        # From vm-b's own network, its address answers as vm-b; through vm-a's floating IP, as vm-a.
        namespace = f"{prefix(cloud)}-dhcp-{sub['id']}"
        wait_for(
            lambda: http_from(namespace, address).startswith("vm-b"),
            timeout=60,
            what="vm-b over HTTP",
        )
        assert http_from(namespace, address).split() == ["vm-b", server["id"]]
        mine = ssh(
            keyfile, vm["fip"], "wget -qO- http://169.254.169.254/openstack/latest/meta_data.json"
        )
        assert json.loads(mine.stdout)["uuid"] == vm["id"]
        assert ssh(keyfile, vm["fip"], "hostname").stdout.strip() == "vm-a"
    finally:
        subprocess.run([str(BIN / "openstack"), "server", "delete", "--wait", server["id"]], env=env,
                       capture_output=True, timeout=180)  # fmt: skip
        cli(env, "port", "delete", port["id"], check=False)
        cli(env, "network", "delete", "mine", check=False)


def test_reconcile_rebuilds_links_deleted_by_hand(
    cloud: Nube, vm: dict[str, Any], keyfile: Path
) -> None:
    assert ssh(keyfile, vm["fip"], "hostname").returncode == 0
    cloud.stop()
    mine = prefix(cloud)
    for name in sorted(kernel_names(cloud)):
        if name.startswith(mine + "-"):
            subprocess.run(["ip", "netns", "delete", name], check=True, capture_output=True)
    for name in sorted(kernel_names(cloud)):
        if name[len(mine)] in "bdr":  # bridges and veths; the taps belong to the running VM
            subprocess.run(["ip", "link", "delete", name], capture_output=True)
    assert all(n[len(mine)] == "t" for n in kernel_names(cloud))
    cloud.start()
    done = wait_for(lambda: (r := ssh(keyfile, vm["fip"], "hostname")).returncode == 0 and r,
                    timeout=120, what="ssh after reconcile")  # fmt: skip
    assert done.stdout.strip() == "vm-a"
    meta = ssh(
        keyfile, vm["fip"], "wget -qO- http://169.254.169.254/openstack/latest/meta_data.json"
    )
    assert json.loads(meta.stdout)["uuid"] == vm["id"]


def test_clearing_the_datapath_leaves_nothing_of_this_cloud(cloud: Nube) -> None:
    cloud.stop()
    done = subprocess.run([str(BIN / "nube"), "clear-datapath", "--data-dir", str(cloud.data_dir)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {n for n in kernel_names(cloud) if n[len(prefix(cloud))] != "t"} == set()
    assert dnsmasqs(cloud) == []
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert prefix(cloud) not in tables
    cloud.start()  # and the next start builds it all again from the database
    assert prefix(cloud) + "_ex" in subprocess.run(["nft", "list", "tables"], capture_output=True,
                                                   text=True).stdout  # fmt: skip


def test_a_public_cidr_on_the_hosts_own_routes_makes_no_default_networks(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Nube never gives the host an address inside a network it already routes (its uplink...)."""
    shown = json.loads(subprocess.run(["ip", "-j", "-4", "route"], capture_output=True, text=True,
                                      check=True).stdout)  # fmt: skip
    taken = [r["dst"] for r in shown if r.get("dst", "default") != "default" and "/" in r["dst"]]
    if not taken:
        pytest.skip("this host has no non-default IPv4 route to collide with")
    server = Nube(
        tmp_path_factory.mktemp("clash") / "data", extra_env={"NUBE_PUBLIC_CIDR": taken[0]}
    )
    server.start()
    try:
        assert cli(server.env(), "network", "list", "-f", "json") == []
        assert "default networks not made" in server.log
    finally:
        server.stop()

"""Networking benchmark: Neutron API latency, time from associating a floating IP until the guest's
HTTP answers through it from outside, and TCP throughput guest→guest, outside↔floating IP and over a
bare bridge between two namespaces (the baseline), all in one run against a real `nube serve`.

    sudo .venv/bin/python benchmarks/network.py [--runs 5] [--guest-mib 16] [--base-mib 1024]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compute_boot import BIN, CACHE, Server
from network_host import PORT, Host
from report import write_section

EXT_CIDR, EXT_GW = (
    "198.51.100.0/24",
    "198.51.100.1",
)  # the outside namespace is the external gateway
# Run at boot by nube-tiny: a listener loop that survives the script. A FIFO opened read-write is a
# stdin that never ends, so nc never half-closes back at the sender (busybox nc quits on either EOF).
LISTENER = f"""#!/bin/sh
mkfifo /tmp/nbhold
(while :; do nc -l -p {PORT} 0<>/tmp/nbhold >/dev/null 2>&1; done) </dev/null >/dev/null 2>&1 &
"""


class Api:
    """Plain HTTP with a project-scoped token over one keep-alive session (what a client library does)."""

    def __init__(self, url: str, user: str, password: str, project: str) -> None:
        self.url, self.http = url, requests.Session()
        body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}},
                         "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}  # fmt: skip
        r = self.http.post(f"{url}/identity/v3/auth/tokens", json=body, timeout=30)
        r.raise_for_status()
        self.http.headers.update(
            {"X-Auth-Token": r.headers["X-Subject-Token"], "OpenStack-API-Version": "compute 2.96"}
        )
        self.project_id = r.json()["token"]["project"]["id"]

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, ok: tuple[int, ...] = ()
    ) -> Any:
        r = self.http.request(method, f"{self.url}{path}", json=body, timeout=60)
        if r.status_code >= 400 and r.status_code not in ok:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return (
            r.json()
            if r.content and r.headers.get("content-type", "").startswith("application/json")
            else None
        )

    def net(
        self, method: str, path: str, body: dict[str, Any] | None = None, ok: tuple[int, ...] = ()
    ) -> Any:
        return self.call(method, f"/networking/v2.0{path}", body, ok)


def api_latency(api: Api, host: Host, runs: int) -> dict[str, list[float]]:
    """ms per call; each run's resources are deleted and their datapath gone before the next run."""
    steps: dict[str, list[float]] = {
        k: [] for k in ("network", "subnet", "router", "interface", "port")
    }

    def timed(step: str, method: str, path: str, body: dict[str, Any]) -> Any:
        start = time.perf_counter()
        out = api.net(method, path, body)
        steps[step].append((time.perf_counter() - start) * 1000)
        return out

    for run in range(runs):
        net = timed("network", "POST", "/networks", {"network": {"name": f"lat{run}"}})["network"]
        sub = timed("subnet", "POST", "/subnets", {"subnet": {
            "network_id": net["id"], "cidr": f"10.90.{run}.0/24", "ip_version": 4, "name": f"lat{run}"}})["subnet"]  # fmt: skip
        rtr = timed("router", "POST", "/routers", {"router": {"name": f"lat{run}"}})["router"]
        timed(
            "interface",
            "PUT",
            f"/routers/{rtr['id']}/add_router_interface",
            {"subnet_id": sub["id"]},
        )
        port = timed("port", "POST", "/ports", {"port": {"network_id": net["id"]}})["port"]
        api.net("DELETE", f"/ports/{port['id']}")
        api.net("PUT", f"/routers/{rtr['id']}/remove_router_interface", {"subnet_id": sub["id"]})
        api.net("DELETE", f"/routers/{rtr['id']}")
        api.net("DELETE", f"/networks/{net['id']}")
        host.wait(lambda: not host.nube_names(), "the datapath of the latency run to be removed")
        print(
            f"API run {run + 1}: " + ", ".join(f"{k} {v[-1]:.1f} ms" for k, v in steps.items()),
            flush=True,
        )
    steps["total"] = [sum(step[i] for step in steps.values()) for i in range(runs)]
    return steps


def wait_ready(server: Server, api: Api, server_id: str, timeout: float = 600) -> str:
    """The guest's READY line; fails at once if the server goes to ERROR."""
    log = server.data_dir / "instances" / server_id / "console.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        for line in text.splitlines():
            if line.startswith("NUBE-TINY READY"):
                return line.strip()
        shown = api.call("GET", f"/compute/v2.1/servers/{server_id}")["server"]
        if shown["status"] == "ERROR":
            raise RuntimeError(f"server {server_id} went to ERROR: {shown.get('fault')}")
        time.sleep(0.5)
    raise TimeoutError(f"server {server_id} not READY after {timeout} s")


def fip_to_http(api: Api, host: Host, fip: dict[str, Any], port_id: str, runs: int) -> list[float]:
    """Seconds from the PUT associating the floating IP to the first HTTP answer through it."""
    address, times = fip["floating_ip_address"], []
    for run in range(runs):
        host.forget(address)
        poller = host.http_poller(address)
        start = time.monotonic()
        api.net("PUT", f"/floatingips/{fip['id']}", {"floatingip": {"port_id": port_id}})
        times.append(poller.answered_at() - start)
        print(
            f"floating IP run {run + 1}: HTTP answered {times[-1]:.2f} s after the association",
            flush=True,
        )
        api.net("PUT", f"/floatingips/{fip['id']}", {"floatingip": {"port_id": None}})
        host.wait(lambda: not host.http_ok(address), "HTTP through the floating IP to stop")
    api.net("PUT", f"/floatingips/{fip['id']}", {"floatingip": {"port_id": port_id}})
    host.wait(lambda: host.http_ok(address), "HTTP through the floating IP")
    return times


def guest_send(host: Host, via: str, target: str, mib: int) -> float:
    """Mbit/s of `dd | nc` run in the guest reached over SSH at `via`, timed there (/proc/uptime)."""
    script = (f"read s _ </proc/uptime; dd if=/dev/zero bs=64k count={mib * 16} 2>/dev/null | nc {target} {PORT}; "
              f"rc=$?; read e _ </proc/uptime; echo NBT $rc $s $e")  # fmt: skip
    wall = time.perf_counter()
    out = host.ssh(via, script)
    wall = time.perf_counter() - wall
    _, rc, start, end = next(line for line in out.splitlines() if line.startswith("NBT ")).split()
    seconds = float(end) - float(start)
    if (
        rc != "0" or not 0 < seconds <= wall
    ):  # the guest's clock cannot beat the SSH session around it
        raise RuntimeError(f"guest nc to {target}: {out.strip()} ({wall:.2f} s around it)")
    return mib * 8 * 1.048576 / seconds


def throughput(
    host: Host, fips: tuple[str, str], fixed: tuple[str, str], args: argparse.Namespace
) -> dict[str, list[float]]:
    """Each guest is reached over SSH at its floating IP and sends to the other's fixed IP."""
    keys = (
        "baseline",
        "outside_to_guest",
        "guest_to_outside",
        "guest_to_guest",
        "guest_to_guest_back",
    )
    rows: dict[str, list[float]] = {k: [] for k in keys}
    for run in range(args.runs):
        rows["baseline"].append(host.baseline_send(args.base_mib))
        rows["outside_to_guest"].append(host.outside_send(fips[0], args.guest_mib))
        with host.outside_listener():
            rows["guest_to_outside"].append(guest_send(host, fips[0], EXT_GW, args.guest_mib))
        rows["guest_to_guest"].append(guest_send(host, fips[0], fixed[1], args.guest_mib))
        rows["guest_to_guest_back"].append(guest_send(host, fips[1], fixed[0], args.guest_mib))
        print(
            f"throughput run {run + 1}: "
            + ", ".join(f"{k} {v[-1]:.0f} Mbit/s" for k, v in rows.items()),
            flush=True,
        )
    return rows


def boot(api: Api, image_id: str, name: str, net_id: str) -> str:
    body = {"server": {"name": name, "imageRef": image_id, "flavorRef": "42", "networks": [{"uuid": net_id}],
                       "key_name": "nbbench", "user_data": base64.b64encode(LISTENER.encode()).decode()}}  # fmt: skip
    return str(api.call("POST", "/compute/v2.1/servers", body)["server"]["id"])


def make_tenant(admin: Api) -> Api:
    name = f"netbench-{uuid.uuid4().hex[:6]}"
    project = admin.call("POST", "/identity/v3/projects", {"project": {"name": name}})["project"]
    user = admin.call("POST", "/identity/v3/users", {"user": {"name": name, "password": "pw"}})[
        "user"
    ]
    role = admin.call("GET", "/identity/v3/roles?name=member")["roles"][0]
    admin.call(
        "PUT", f"/identity/v3/projects/{project['id']}/users/{user['id']}/roles/{role['id']}"
    )
    return Api(admin.url, name, "pw", name)


def run(
    server: Server, host: Host, args: argparse.Namespace, made: dict[str, list[str]]
) -> dict[str, Any]:
    from compute_boot import PASSWORD

    admin = Api(server.url, "admin", PASSWORD, "admin")
    api = make_tenant(admin)
    image_id = admin.call("GET", "/image/v2/images?name=nube-tiny")["images"][0]["id"]
    latency = api_latency(api, host, args.runs)

    ext = admin.net("POST", "/networks", {"network": {"name": "nbext", "router:external": True}})[
        "network"
    ]
    made["admin_networks"].append(ext["id"])
    admin.net("POST", "/subnets", {"subnet": {"network_id": ext["id"], "cidr": EXT_CIDR, "ip_version": 4,
                                              "enable_dhcp": False, "gateway_ip": EXT_GW}})  # fmt: skip
    net = api.net("POST", "/networks", {"network": {"name": "nbnet"}})["network"]
    made["networks"].append(net["id"])
    sub = api.net(
        "POST",
        "/subnets",
        {"subnet": {"network_id": net["id"], "cidr": "10.91.0.0/24", "ip_version": 4}},
    )["subnet"]
    rtr = api.net("POST", "/routers", {"router": {"name": "nbgw"}})["router"]
    made["routers"].append(rtr["id"])
    api.net("PUT", f"/routers/{rtr['id']}/add_router_interface", {"subnet_id": sub["id"]})
    api.net(
        "PUT",
        f"/routers/{rtr['id']}",
        {"router": {"external_gateway_info": {"network_id": ext["id"]}}},
    )
    group = api.net("GET", "/security-groups?name=default")["security_groups"][0]
    for port in (22, 80, PORT):
        api.net("POST", "/security-group-rules", {"security_group_rule": {
            "security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "port_range_min": port, "port_range_max": port, "remote_ip_prefix": "0.0.0.0/0"}})  # fmt: skip
    api.call(
        "POST",
        "/compute/v2.1/os-keypairs",
        {"keypair": {"name": "nbbench", "public_key": host.public_key()}},
    )
    ids = []
    # One after the other: two first boots of an image at once race on copying its kernel (compute's
    # _raw_file shares one .tmp path), and one of them ends in ERROR.
    for name in ("nbsend", "nbrecv"):
        ids.append(boot(api, image_id, name, net["id"]))
        made["servers"].append(ids[-1])
        print(f"{wait_ready(server, api, ids[-1])} ({ids[-1]})", flush=True)
    ports = [api.net("GET", f"/ports?device_id={i}")["ports"][0] for i in ids]
    host.outside_up(host.bridge_of(ext["id"]), EXT_GW, EXT_CIDR)
    fip = api.net("POST", "/floatingips", {"floatingip": {"floating_network_id": ext["id"]}})[
        "floatingip"
    ]
    made["fips"].append(fip["id"])
    fip_times = fip_to_http(api, host, fip, ports[0]["id"], args.runs)
    second = api.net("POST", "/floatingips", {"floatingip": {
        "floating_network_id": ext["id"], "port_id": ports[1]["id"]}})["floatingip"]  # fmt: skip
    made["fips"].append(second["id"])
    fips = (fip["floating_ip_address"], second["floating_ip_address"])
    for address in fips:
        host.wait(partial(host.ssh_ok, address), f"SSH to the guest at {address}", timeout=180)
    host.baseline_up()
    fixed = (ports[0]["fixed_ips"][0]["ip_address"], ports[1]["fixed_ips"][0]["ip_address"])
    rates = throughput(host, fips, fixed, args)
    return {"latency": latency, "fip": fip_times, "rates": rates}


def cleanup(server: Server, made: dict[str, list[str]]) -> None:
    """Best effort, in dependency order; what the API cannot remove, Host.sweep does afterwards."""
    from compute_boot import PASSWORD

    try:
        admin = Api(server.url, "admin", PASSWORD, "admin")
    except (requests.RequestException, RuntimeError, KeyError) as exc:
        print(f"cleanup: no API ({exc}); sweeping the kernel only", file=sys.stderr)
        return
    steps: list[tuple[str, str, dict[str, Any] | None]] = [
        ("DELETE", f"/networking/v2.0/floatingips/{f}", None) for f in made["fips"]
    ]
    steps += [("DELETE", f"/compute/v2.1/servers/{s}", None) for s in made["servers"]]
    for method, path, body in steps:
        admin.call(method, path, body, ok=(404, 409))
    for server_id in made["servers"]:
        deadline = time.monotonic() + 300
        while (
            time.monotonic() < deadline
            and admin.http.get(
                f"{server.url}/compute/v2.1/servers/{server_id}", timeout=30
            ).status_code
            != 404
        ):
            time.sleep(0.5)
    for router_id in made["routers"]:
        admin.net(
            "PUT", f"/routers/{router_id}", {"router": {"external_gateway_info": {}}}, ok=(404,)
        )
        for port in admin.net("GET", f"/ports?device_id={router_id}")["ports"]:
            admin.net(
                "PUT",
                f"/routers/{router_id}/remove_router_interface",
                {"port_id": port["id"]},
                ok=(404, 409),
            )
        admin.net("DELETE", f"/routers/{router_id}", ok=(404, 409))
    for net_id in made["networks"] + made["admin_networks"]:
        admin.net("DELETE", f"/networks/{net_id}", ok=(404, 409))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--guest-mib", type=int, default=16, help="MiB per transfer that involves a guest"
    )
    parser.add_argument(
        "--base-mib", type=int, default=1024, help="MiB per transfer over the bare bridge"
    )
    args = parser.parse_args()
    if os.geteuid() != 0 or not (CACHE / "manifest.json").exists():
        print(
            f"needs root and a nube-tiny build in {CACHE} (images/build-nube-tiny.sh)",
            file=sys.stderr,
        )
        return 1
    load = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="nube-bench-network-"))
    server = Server(workdir / "data", log=workdir / "nube.log")
    host = Host(workdir)
    made: dict[str, list[str]] = {
        "fips": [],
        "servers": [],
        "routers": [],
        "networks": [],
        "admin_networks": [],
    }
    try:
        server.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        subprocess.run([str(BIN / "nube"), "image", "import-default", "--data-dir", str(server.data_dir)], env=env,
                       check=True, capture_output=True)  # fmt: skip
        host.cloud_prefix = (
            "nb" + (server.data_dir / "cloud-id").read_text().strip().replace("-", "")[:4]
        )
        results = {**run(server, host, args, made), "load": load}
    except BaseException:
        log = (
            server.log.read_text(errors="replace").splitlines()
            if server.log and server.log.exists()
            else []
        )
        print("\n".join(["nube serve's log, last lines:", *log[-40:]]), file=sys.stderr)
        raise
    finally:
        host.down()
        try:
            cleanup(server, made)
        finally:
            server.stop()
            host.sweep(made["servers"], server.data_dir)
            shutil.rmtree(workdir, ignore_errors=True)
    report = render(results, args)
    print(report)
    write_section("network", report)
    return 0


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")  # fmt: skip
    med = statistics.median
    lat, rates = results["latency"], results["rates"]
    lines = [
        "## Networking: API latency, floating IP to HTTP, TCP throughput",
        "",
        f"Produced by `sudo .venv/bin/python benchmarks/network.py --runs {args.runs} --guest-mib {args.guest_mib} "
        f"--base-mib {args.base_mib}` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores "
        f"({cpu}), Python {platform.python_version()}, load average {results['load']:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other engineers' test runs share the machine). One run of the "
        "script: a fresh `nube serve` on 127.0.0.1, two nube-tiny guests (m1.nano) on one tenant network behind a "
        "router whose gateway is on an admin-made external network, and the script's own namespaces. Medians of "
        f"{args.runs} runs.",
        "",
        "**Neutron API latency** (ms), plain HTTP (`requests`, one keep-alive session, a project-scoped token, as a",
        "tenant `member`); each call returns when the row is committed, the kernel datapath follows in a job. Each",
        "run deletes what it made and waits until the datapath is gone before the next.",
        "",
        "| network | subnet | router | add interface | port | all five |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        "| "
        + " | ".join(
            f"{med(lat[k]):.1f}"
            for k in ("network", "subnet", "router", "interface", "port", "total")
        )
        + " |",
        "",
        f"**Floating IP to HTTP:** from the `PUT /floatingips/{{id}}` that associates it with the first guest's port "
        f"until that guest's port 80 answers through it from the outside namespace: median "
        f"{med(results['fip']):.2f} s (runs: {', '.join(f'{t:.2f}' for t in results['fip'])}). The outside namespace "
        "sits on the external network's bridge at its gateway address, polls with a TCP connect every 50 ms, "
        "forgets the floating IP's neighbour entry before each run and re-asks ARP every 100 ms (its own sysctl).",
        "",
        "**TCP throughput** (Mbit/s): busybox `dd if=/dev/zero bs=64k | nc IP PORT` into busybox `nc -l > /dev/null`,",
        "timed on the sending side (in a guest: `/proc/uptime` around the pipe, started over SSH from outside).",
        f"Guest transfers are {args.guest_mib} MiB, the baseline's {args.base_mib} MiB. The baseline is two namespaces",
        "joined by a plain Linux bridge and veths, with the same busybox (busybox-static on the host). The guests",
        "run under TCG (no usable KVM here) with userspace virtio-net (no vhost-net): every guest packet costs",
        "emulated CPU, so guest figures measure the emulation on this 2-core machine, not Nube's datapath, which",
        "is kernel bridging, nftables and (through the floating IP) the router namespace's NAT.",
        "",
        "The host side is timed around `ip netns exec ... sh -c 'dd | nc'`, which adds a few ms of start-up. With",
        "`br_netfilter` built in here, bridged IPv4 crosses the host's nftables hooks, so the baseline's packets",
        "pass the same host tables (every running Nube's) as the guests' do.",
        "",
        "| path | Mbit/s (median) | runs |",
        "| --- | ---: | --- |",
    ]
    labels = {"baseline": "bare bridge, namespace → namespace (baseline)", "outside_to_guest": "outside → floating IP (guest receives)",
              "guest_to_outside": "guest → outside (through SNAT to the floating IP)", "guest_to_guest": "guest → guest, same network (first → second)",
              "guest_to_guest_back": "guest → guest, same network (second → first)"}  # fmt: skip
    for key, label in labels.items():
        lines.append(
            f"| {label} | {med(rates[key]):.0f} | {', '.join(f'{v:.0f}' for v in rates[key])} |"
        )
    out_in, guest_out, g2g = (
        med(rates[k]) for k in ("outside_to_guest", "guest_to_outside", "guest_to_guest")
    )
    lines += ["", f"Through the same router and NAT, a guest receives from outside at {out_in / guest_out:.1f} times the rate "
              f"it sends to outside; a guest sends to outside at {guest_out / g2g:.0%} of its rate to a guest on its own "
              "network."]  # fmt: skip
    if out_in / guest_out > 2:
        lines[-1] += (
            " The direction, not the path, sets the limit: the guest's sending side under emulation."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

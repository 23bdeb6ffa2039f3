"""The Linux datapath of networks: a bridge per network in the host namespace (libvirt plugs taps into
it), and per DHCP-enabled subnet a namespace joined to the bridge by a veth, with dnsmasq serving DHCP
only (host-notes §4). Plain specs in, kernel state out; nothing here knows projects or SQLite.

`converge(desired)` is the one entry point: it makes the kernel hold exactly the desired bridges and
DHCP namespaces among the names carrying this cloud's prefix, and removes every other such name. It is
idempotent, so a crash at any point is repaired by running it again.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.network.metadata import ADDRESS as METADATA_ADDRESS
from appliance.network.nft import guard_ruleset, host_ruleset, nat_ruleset, ruleset
from appliance.network.specs import DhcpSpec, NetworkSpec, RouterSpec

log = logging.getLogger("nube.network")

NS_IF = "nbdhcp0"  # the veth end inside a DHCP namespace (its own namespace: no clash)


class Names:
    """Every kernel name this cloud makes: `nb` + 4 hex of the cloud id + a kind letter + an id
    (interface names are at most 15 characters)."""

    def __init__(self, cloud_id: str) -> None:
        self.prefix = "nb" + cloud_id.replace("-", "")[:4]

    def bridge(self, network_id: str) -> str:
        return f"{self.prefix}b{network_id.replace('-', '')[:8]}"

    def veth(self, subnet_id: str) -> str:
        return f"{self.prefix}d{subnet_id.replace('-', '')[:8]}"

    def tap(self, port_id: str) -> str:
        return f"{self.prefix}t{port_id.replace('-', '')[:8]}"

    def namespace(self, subnet_id: str) -> str:
        return f"{self.prefix}-dhcp-{subnet_id}"

    def router_namespace(self, router_id: str) -> str:
        return f"{self.prefix}-router-{router_id}"

    def router_veth(self, port_id: str) -> str:
        return f"{self.prefix}r{port_id.replace('-', '')[:8]}"

    def leg(self, port_id: str) -> str:
        """The router's end of a leg, inside the router's namespace."""
        return f"qr{port_id.replace('-', '')[:8]}"


class Datapath:
    """`live=False` keeps the state in memory only (unit tests, machines without root)."""

    def __init__(self, names: Names, run_dir: Path, live: bool) -> None:
        self.names = names
        self.run_dir = run_dir
        self.live = live
        self.fake_links: set[str] = set()
        self.fake_namespaces: set[str] = set()
        self.fake_ruleset = ""

    # -- what exists ---------------------------------------------------------------------------

    def links(self) -> set[str]:
        if not self.live:
            return set(self.fake_links)
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            names = {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        return {n for n in names if n and n.startswith(self.names.prefix)}

    def namespaces(self) -> set[str]:
        if not self.live:
            return set(self.fake_namespaces)
        from pyroute2 import netns

        return {n for n in netns.listnetns() if n.startswith(self.names.prefix + "-")}

    # -- the one entry point -------------------------------------------------------------------

    def converge(self, desired: list[NetworkSpec], routers: Sequence[RouterSpec] = ()) -> None:
        want_bridges = {self.names.bridge(n.network_id) for n in desired}
        want_dhcp = {d.subnet_id: (n, d) for n in desired for d in n.dhcp}
        want_ns = {self.names.namespace(s) for s in want_dhcp}
        want_routers = {self.names.router_namespace(r.router_id) for r in routers}
        want_legs = {
            self.names.router_veth(leg.port_id)
            for r in routers
            for leg in (*r.legs, *((r.gateway,) if r.gateway else ()))
        }
        for ns in sorted(self.namespaces() - want_ns - want_routers):
            if "-dhcp-" in ns:
                self._remove_dhcp(ns.split("-dhcp-", 1)[1])
            else:
                self._remove_namespace(ns)
        for stale in sorted(self._run_dirs() - set(want_dhcp)):
            self._remove_dhcp(stale)
        for net in desired:
            self._ensure_bridge(self.names.bridge(net.network_id), net.host_address)
        for net, dhcp in want_dhcp.values():
            self._ensure_dhcp(self.names.bridge(net.network_id), dhcp)
        for net in desired:
            self._plug_taps(self.names.bridge(net.network_id), net.taps)
        for router in routers:
            self._ensure_router(router)
        for link in sorted(self.links()):
            kind = link[len(self.names.prefix)]
            if kind == "b" and link not in want_bridges:
                self._delete_link(link)
            elif kind == "d" and link not in {self.names.veth(s) for s in want_dhcp}:
                self._delete_link(link)
            elif kind == "r" and link not in want_legs:
                self._delete_link(link)
        # Last, so a ruleset nft refuses cannot keep stale links around; taps come later anyway
        # (compute waits for this pass before libvirt creates them).
        self._load_filters(desired)

    # -- routers ---------------------------------------------------------------------------------

    def _ensure_router(self, router: RouterSpec) -> None:
        """A namespace forwarding between its legs, each a veth into a network's bridge holding the
        subnet's gateway address (no external leg, no NAT: nothing leaves Nube's own bridges)."""
        ns = self.names.router_namespace(router.router_id)
        if not self.live:
            self.fake_namespaces.add(ns)
            self.fake_links |= {self.names.router_veth(leg.port_id) for leg in router.legs}
            return
        from pyroute2 import IPRoute, NetNS, netns

        if ns not in netns.listnetns():
            netns.create(ns)
            log.info("namespace %s created", ns)
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True,
                       capture_output=True, timeout=30)  # fmt: skip
        legs = [*router.legs, *((router.gateway,) if router.gateway else ())]
        with IPRoute() as ipr:
            for leg in legs:
                host = self.names.router_veth(leg.port_id)
                if not ipr.link_lookup(ifname=host):
                    ipr.link("add", ifname=host, kind="veth",
                             peer={"ifname": self.names.leg(leg.port_id), "net_ns_fd": ns})  # fmt: skip
                    _no_ipv6(host)
                master = ipr.link_lookup(ifname=self.names.bridge(leg.network_id))[0]
                ipr.link("set", index=ipr.link_lookup(ifname=host)[0], master=master, state="up")
        wanted = {self.names.leg(leg.port_id): leg for leg in legs}
        with NetNS(ns) as nsr:
            lo = nsr.link_lookup(ifname="lo")
            if lo:
                nsr.link("set", index=lo[0], state="up")
            for link in nsr.get_links():
                name = link.get_attr("IFLA_IFNAME")
                if name and name[:2] in ("qr", "qg") and name not in wanted:
                    nsr.link("del", index=link["index"])
            for name, leg in wanted.items():
                index = nsr.link_lookup(ifname=name)[0]
                have = {a.get_attr("IFA_ADDRESS") for a in nsr.get_addr(index=index, family=2)}
                if leg.address not in have:
                    for address in have:
                        nsr.addr("del", index=index, address=address, prefixlen=leg.prefixlen)
                    nsr.link("set", index=index, address=leg.mac)
                    nsr.addr("add", index=index, address=leg.address, prefixlen=leg.prefixlen)
                nsr.link("set", index=index, state="up")
            if router.gateway is not None:
                index = nsr.link_lookup(ifname=self.names.leg(router.gateway.port_id))[0]
                have = {a.get_attr("IFA_ADDRESS") for a in nsr.get_addr(index=index, family=2)}
                for fip, _ in router.floating:
                    if fip not in have:
                        nsr.addr("add", index=index, address=fip, prefixlen=32)
                for stale in have - {router.gateway.address} - {f for f, _ in router.floating}:
                    nsr.addr("del", index=index, address=stale, prefixlen=32)
                if router.gateway_via:
                    nsr.route("replace", dst="0.0.0.0/0", gateway=router.gateway_via)
            _static_routes(nsr, router.routes)
        gw = self.names.leg(router.gateway.port_id) if router.gateway else ""
        text = nat_ruleset(gw, router)
        done = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True,
                              capture_output=True, timeout=30)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"nft refused the NAT rules of router {router.router_id}: {done.stderr[:500]}"
            )

    def _remove_namespace(self, ns: str) -> None:
        if not self.live:
            self.fake_namespaces.discard(ns)
            return
        from pyroute2 import netns

        netns.remove(ns)  # the veth ends inside go with it, and their peers in the bridges
        log.info("namespace %s removed", ns)

    # -- security groups -----------------------------------------------------------------------

    @property
    def table(self) -> str:
        return f"{self.names.prefix}_sg"

    def _load_filters(self, desired: list[NetworkSpec]) -> None:
        text = (
            ruleset(
                self.table,
                [(self.names.bridge(n.network_id), f) for n in desired for f in n.filters],
            )
            + guard_ruleset(
                f"{self.names.prefix}_as",
                [(self.names.tap(g.port_id), g) for n in desired for g in n.guards],
            )
            + host_ruleset(
                f"{self.names.prefix}_ex",
                [self.names.bridge(n.network_id) for n in desired if n.host_address],
            )
        )
        self.fake_ruleset = text
        if not self.live:
            return
        if shutil.which("nft") is None:
            log.warning("nft is not installed: security groups are not enforced")
            return
        done = subprocess.run(
            ["nft", "-f", "-"], input=text, text=True, capture_output=True, timeout=30
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"nft refused the security group ruleset: {done.stderr.strip()[:500]}"
            )

    # -- bridges -------------------------------------------------------------------------------

    def _ensure_bridge(self, name: str, host_address: str | None = None) -> None:
        """The network's bridge, up; holding `host_address` (and no other IPv4 address) if given."""
        if not self.live:
            self.fake_links.add(name)
            return
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            if not ipr.link_lookup(ifname=name):
                ipr.link("add", ifname=name, kind="bridge")
                log.info("bridge %s created", name)
                _no_ipv6(name)
            index = ipr.link_lookup(ifname=name)[0]
            have = {
                (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(index=index, family=2)
            }
            want = set()
            if host_address:
                ip, prefixlen = host_address.split("/")
                want.add((ip, int(prefixlen)))
            for address, prefixlen in have - want:
                ipr.addr("del", index=index, address=address, prefixlen=prefixlen)
            for address, prefixlen in want - have:
                ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
                log.info("host address %s/%s on bridge %s", address, prefixlen, name)
            ipr.link("set", index=index, state="up")

    def _plug_taps(self, bridge: str, taps: Sequence[str]) -> None:
        """Taps that exist (their VMs run) but lost their bridge, e.g. after it was deleted by hand."""
        if not self.live or not taps:
            return
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            master = ipr.link_lookup(ifname=bridge)[0]
            for tap in taps:
                found = ipr.link_lookup(ifname=tap)
                if found and ipr.get_links(found[0])[0].get_attr("IFLA_MASTER") != master:
                    ipr.link("set", index=found[0], master=master, state="up")
                    log.info("tap %s plugged back into %s", tap, bridge)

    def _delete_link(self, name: str) -> None:
        if not self.live:
            self.fake_links.discard(name)
            return
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=name)
            if found:
                ipr.link("del", index=found[0])
                log.info("link %s removed", name)

    # -- DHCP namespaces -----------------------------------------------------------------------

    def _dir(self, subnet_id: str) -> Path:
        return self.run_dir / subnet_id

    def _run_dirs(self) -> set[str]:
        if not self.run_dir.is_dir():
            return set()
        return {p.name for p in self.run_dir.iterdir() if p.is_dir()}

    def _ensure_dhcp(self, bridge: str, spec: DhcpSpec) -> None:
        ns = self.names.namespace(spec.subnet_id)
        veth = self.names.veth(spec.subnet_id)
        folder = self._dir(spec.subnet_id)
        folder.mkdir(parents=True, exist_ok=True)
        hosts = "".join(f"{h.mac},{h.ip},{h.hostname}\n" for h in spec.hosts)
        args = dnsmasq_args(spec, folder)
        if not self.live:
            self.fake_namespaces.add(ns)
            self.fake_links.add(veth)
            (folder / "hosts").write_text(hosts)
            (folder / "args").write_text("\n".join(args))
            return
        from pyroute2 import IPRoute, NetNS, netns

        fresh = ns not in netns.listnetns()
        if fresh:
            netns.create(ns)
        with IPRoute() as ipr:
            if not ipr.link_lookup(ifname=veth):
                ipr.link("add", ifname=veth, kind="veth", peer={"ifname": NS_IF, "net_ns_fd": ns})
                _no_ipv6(veth)
            master = ipr.link_lookup(ifname=bridge)[0]
            ipr.link("set", index=ipr.link_lookup(ifname=veth)[0], master=master, state="up")
        network = ipaddress.ip_network(spec.cidr)
        with NetNS(ns) as nsr:
            lo = nsr.link_lookup(ifname="lo")
            if lo:
                nsr.link("set", index=lo[0], state="up")
            index = nsr.link_lookup(ifname=NS_IF)[0]
            have = {
                (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in nsr.get_addr(index=index, family=2)
            }
            # The DHCP port's address, and the metadata service's (metadata.py listens there).
            want = {(spec.address, network.prefixlen), (METADATA_ADDRESS, 32)}
            for address, prefixlen in have - want:
                nsr.addr("del", index=index, address=address, prefixlen=prefixlen)
            for address, prefixlen in want - have:
                nsr.addr("add", index=index, address=address, prefixlen=prefixlen)
            if spec.mac:
                nsr.link("set", index=index, address=spec.mac)
            nsr.link("set", index=index, state="up", mtu=spec.mtu)
        pid = _dnsmasq_pid(folder)
        old_args = (folder / "args").read_text() if (folder / "args").exists() else ""
        old_hosts = (folder / "hosts").read_text() if (folder / "hosts").exists() else None
        if hosts != old_hosts:
            tmp = folder / "hosts.tmp"
            tmp.write_text(hosts)
            tmp.replace(folder / "hosts")
        if pid is not None and fresh:  # its namespace was deleted under it: start it in the new one
            _stop(pid)
            pid = None
        if pid is not None and old_args == "\n".join(args):
            if hosts != old_hosts:
                os.kill(pid, signal.SIGHUP)  # dnsmasq rereads --dhcp-hostsfile on SIGHUP
            return
        if pid is not None:
            _stop(pid)
        (folder / "args").write_text("\n".join(args))
        subprocess.run(
            ["ip", "netns", "exec", ns, *args], check=True, capture_output=True, timeout=30
        )
        log.info("dnsmasq for subnet %s started in %s", spec.subnet_id, ns)

    def _remove_dhcp(self, subnet_id: str) -> None:
        ns = self.names.namespace(subnet_id)
        folder = self._dir(subnet_id)
        if not self.live:
            self.fake_namespaces.discard(ns)
            self.fake_links.discard(self.names.veth(subnet_id))
            shutil.rmtree(folder, ignore_errors=True)
            return
        from pyroute2 import netns

        pid = _dnsmasq_pid(folder)
        if pid is not None:
            _stop(pid)
        self._delete_link(self.names.veth(subnet_id))
        if ns in netns.listnetns():
            netns.remove(ns)
            log.info("namespace %s removed", ns)
        shutil.rmtree(folder, ignore_errors=True)


STATIC = 4  # RTPROT_STATIC: the routes Nube adds for a router's `routes` carry it


def _static_routes(nsr: Any, routes: Sequence[tuple[str, str]]) -> None:
    """A router namespace's static routes become exactly `routes` (extraroute)."""
    want = {(dst, via) for dst, via in routes}
    for route in nsr.get_routes(family=2):
        if route["proto"] != STATIC or route.get_attr("RTA_DST") is None:
            continue
        dst = f"{route.get_attr('RTA_DST')}/{route['dst_len']}"
        via = route.get_attr("RTA_GATEWAY")
        if (dst, via) not in want:
            nsr.route("del", dst=dst, gateway=via, proto=STATIC)
    for dst, via in sorted(want):
        nsr.route("replace", dst=dst, gateway=via, proto=STATIC)


def clear(data_dir: Path) -> int:
    """`nube clear-datapath`: converge to nothing, so exactly this cloud's kernel state goes."""
    id_file = data_dir / "cloud-id"
    if not id_file.exists():
        print(f"nube: {data_dir} has no cloud-id: nothing of it can be in the kernel")
        return 0
    if os.geteuid() != 0:
        print("nube: clear-datapath needs root", file=sys.stderr)
        return 1
    datapath = Datapath(Names(id_file.read_text().strip()), data_dir / "dhcp", live=True)
    datapath.converge([], [])
    print(f"nube: removed the links, namespaces and nft tables named {datapath.names.prefix}*")
    return 0


def dnsmasq_args(spec: DhcpSpec, folder: Path) -> list[str]:
    """dnsmasq for one subnet: DHCP only (`--port=0`), on the namespace's veth only, and only to the
    MACs of the subnet's ports (`static`: the addresses are the ports' fixed IPs)."""
    network = ipaddress.ip_network(spec.cidr)
    args = [
        "dnsmasq", "--conf-file=/dev/null", "--port=0", f"--interface={NS_IF}", "--bind-interfaces",
        "--except-interface=lo", f"--pid-file={folder / 'dnsmasq.pid'}",
        f"--dhcp-leasefile={folder / 'leases'}", f"--dhcp-hostsfile={folder / 'hosts'}",
        f"--dhcp-range={network.network_address},static,{network.netmask},86400s",
        "--dhcp-authoritative", "--user=root", f"--log-facility={folder / 'dnsmasq.log'}",
        "--log-dhcp", f"--dhcp-option=option:mtu,{spec.mtu}",
    ]  # fmt: skip
    # Option 121 (RFC 3442) reaches the metadata service through this namespace; clients that take it
    # ignore option 3, so it carries the default route too.
    routes = [f"{METADATA_ADDRESS}/32,{spec.address}", *(f"{d},{via}" for d, via in spec.routes)]
    if spec.gateway:
        args.append(f"--dhcp-option=option:router,{spec.gateway}")
        routes.append(f"0.0.0.0/0,{spec.gateway}")
    else:
        args.append("--dhcp-option=option:router")
    args.append("--dhcp-option-force=option:classless-static-route," + ",".join(routes))
    if spec.dns:
        args.append("--dhcp-option=option:dns-server," + ",".join(spec.dns))
    return args


def _dnsmasq_pid(folder: Path) -> int | None:
    """The pid in our pidfile, if that process is alive and is the dnsmasq of this folder."""
    try:
        pid = int((folder / "dnsmasq.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(folder / "dnsmasq.pid").encode() in cmdline else None


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    import time

    for _ in range(50):
        if not Path(f"/proc/{pid}").exists():
            return
        status = (
            Path(f"/proc/{pid}/status").read_text(errors="replace")
            if Path(f"/proc/{pid}/status").exists()
            else ""
        )
        if "State:\tZ" in status:
            return
        time.sleep(0.05)


def _no_ipv6(name: str) -> None:
    """Bridges and veths carry no host address of ours, not even an IPv6 link-local one."""
    try:
        Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1")
    except OSError:
        pass

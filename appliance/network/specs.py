"""What the network service asks of the datapath: plain frozen values, no projects, no SQLite."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DhcpHost:
    mac: str
    ip: str
    hostname: str


@dataclass(frozen=True, slots=True)
class DhcpSpec:
    subnet_id: str
    cidr: str
    address: str  # the DHCP port's IP, put on the namespace's veth end
    gateway: str | None
    dns: tuple[str, ...]
    mtu: int
    hosts: tuple[DhcpHost, ...]
    mac: str = ""  # the DHCP port's MAC, kept by the veth end across rebuilds (guests' ARP caches)
    routes: tuple[tuple[str, str], ...] = ()  # the subnet's host routes (destination, next hop)


@dataclass(frozen=True, slots=True)
class Allow:
    """One ingress rule of a port's security groups; `sources` None means from anywhere."""

    protocol: str | None  # tcp, udp, icmp or None for any
    port_min: int | None
    port_max: int | None
    sources: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class PortFilter:
    port_id: str
    ip: str
    allows: tuple[Allow, ...]  # ingress
    egress: tuple[Allow, ...] | None = None  # None: anything may leave (an any-egress rule)


@dataclass(frozen=True, slots=True)
class PortGuard:
    """Anti-spoofing for a server's port: what may come out of its tap."""

    port_id: str
    mac: str
    ips: tuple[str, ...]  # addresses and CIDRs (address pairs) it may send from
    macs: tuple[str, ...] = ()  # other MACs it may send from (address pairs)


@dataclass(frozen=True, slots=True)
class RouterLeg:
    port_id: str
    network_id: str
    mac: str
    address: str  # the subnet's gateway IP
    prefixlen: int


@dataclass(frozen=True, slots=True)
class RouterSpec:
    router_id: str
    legs: tuple[RouterLeg, ...]
    gateway: RouterLeg | None = None  # the leg on the external network
    gateway_via: str | None = None  # the external subnet's gateway: the router's default route
    snat_from: tuple[str, ...] = ()  # the CIDRs behind the router, SNAT to the gateway address
    floating: tuple[tuple[str, str], ...] = ()  # (floating IP, fixed IP): DNAT in, SNAT out
    routes: tuple[tuple[str, str], ...] = ()  # static routes (destination CIDR, next hop)


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    network_id: str
    dhcp: tuple[DhcpSpec, ...]
    filters: tuple[PortFilter, ...] = ()
    guards: tuple[PortGuard, ...] = ()
    host_address: str | None = None  # "ip/prefixlen" the host holds on the bridge (`public`)
    taps: tuple[str, ...] = ()  # the taps of the servers' ports that belong in this bridge

"""From rows to specs: what the kernel should hold for every network, read from the database."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from appliance.network.specs import (
    Allow,
    DhcpHost,
    DhcpSpec,
    NetworkSpec,
    PortFilter,
    PortGuard,
)

if TYPE_CHECKING:
    from appliance.network.service import Network

DHCP_OWNER = "network:dhcp"


def desired_networks(svc: Network) -> list[NetworkSpec]:
    """Every network as the datapath should hold it: bridge, DHCP per subnet, port filters and guards."""
    specs = []
    for network in svc._rows("SELECT * FROM networks ORDER BY created_at, id"):
        dhcp = []
        for subnet in svc._rows(
            "SELECT * FROM subnets WHERE network_id = ? AND enable_dhcp = 1", [network["id"]]
        ):
            own = svc._one(
                "SELECT f.ip_address, p.mac_address FROM fixed_ips f JOIN ports p ON p.id = f.port_id "
                "WHERE p.device_id = ? AND f.subnet_id = ?", [f"dhcp-{subnet['id']}", subnet["id"]],
            )  # fmt: skip
            if own is None:
                continue
            hosts = tuple(
                DhcpHost(r["mac_address"], r["ip_address"], f"host-{r['ip_address'].replace('.', '-')}")
                for r in svc._rows(
                    "SELECT p.mac_address, f.ip_address FROM ports p JOIN fixed_ips f ON f.port_id = p.id "
                    "WHERE f.subnet_id = ? AND p.device_owner != ? ORDER BY f.ip_address",
                    [subnet["id"], DHCP_OWNER],
                )
            )  # fmt: skip
            dhcp.append(DhcpSpec(subnet["id"], subnet["cidr"], own["ip_address"], subnet["gateway_ip"],
                                 tuple(json.loads(subnet["dns_nameservers"])), network["mtu"], hosts,
                                 own["mac_address"], tuple((r["destination"], r["nexthop"])
                                 for r in json.loads(subnet["host_routes"]))))  # fmt: skip
        host = svc._one(
            "SELECT address, prefixlen FROM host_addresses WHERE network_id = ?", [network["id"]]
        )
        taps = svc._rows(
            "SELECT id FROM ports WHERE network_id = ? AND device_owner LIKE 'compute:%' ORDER BY id",
            [network["id"]],
        )
        specs.append(
            NetworkSpec(
                network["id"],
                tuple(dhcp),
                _filters(svc, network["id"]),
                _guards(svc, network["id"]),
                f"{host['address']}/{host['prefixlen']}" if host else None,
                tuple(svc.tap(t["id"]) for t in taps),
            )
        )
    return specs


def _guards(svc: Network, network_id: str) -> tuple[PortGuard, ...]:
    """Anti-spoofing for server ports with port security: their addresses and address pairs."""
    guards: dict[str, PortGuard] = {}
    for port in svc._rows(
        "SELECT p.id, p.mac_address, p.address_pairs, f.ip_address FROM ports p JOIN fixed_ips f ON f.port_id = p.id "
        "WHERE p.network_id = ? AND p.device_owner LIKE 'compute:%' AND p.port_security = 1 "
        "ORDER BY p.id, f.ip_address", [network_id],
    ):  # fmt: skip
        old = guards.get(port["id"])
        pairs = json.loads(port["address_pairs"])
        ips = (
            (*old.ips, port["ip_address"])
            if old
            else (port["ip_address"], *(p["ip_address"] for p in pairs))
        )
        macs = tuple(sorted({p["mac_address"] for p in pairs} - {port["mac_address"]}))
        guards[port["id"]] = PortGuard(port["id"], port["mac_address"], ips, macs)
    return tuple(guards.values())


def _filters(svc: Network, network_id: str) -> tuple[PortFilter, ...]:
    """What the security groups of each server port on the network let in and out (IPv4)."""
    filters = []
    seen: set[str] = set()
    for port in svc._rows(
        "SELECT p.id, p.security_groups, p.address_pairs, f.ip_address FROM ports p JOIN fixed_ips f ON f.port_id = p.id "
        "WHERE p.network_id = ? AND p.device_owner LIKE 'compute:%' AND p.port_security = 1 "
        "ORDER BY p.id, f.ip_address", [network_id],
    ):  # fmt: skip
        groups = json.loads(port["security_groups"])
        if not groups:
            continue
        ingress = _allows(svc, groups, "ingress")
        egress = _allows(svc, groups, "egress")
        if any(a.protocol is None and a.port_min is None and a.sources is None for a in egress):
            unrestricted: tuple[Allow, ...] | None = None  # Neutron's default: any egress
        else:
            unrestricted = egress
        # The groups guard the port's own addresses and, once per port, its address pairs.
        addresses = [port["ip_address"]]
        if port["id"] not in seen:
            seen.add(port["id"])
            addresses += [p["ip_address"] for p in json.loads(port["address_pairs"])]
        for address in addresses:
            filters.append(PortFilter(port["id"], address, ingress, unrestricted))
    return tuple(filters)


def _allows(svc: Network, groups: list[str], direction: str) -> tuple[Allow, ...]:
    """The IPv4 rules of these groups in one direction; `sources` are the remote addresses."""
    allows = []
    marks = ",".join("?" * len(groups))
    for rule in svc._rows(
        f"SELECT * FROM security_group_rules WHERE security_group_id IN ({marks}) AND direction = ? "
        "AND ethertype = 'IPv4' ORDER BY id", [*groups, direction],
    ):  # fmt: skip
        remote: tuple[str, ...] | None = None
        if rule["remote_ip_prefix"] and rule["remote_ip_prefix"] != "0.0.0.0/0":
            remote = (rule["remote_ip_prefix"],)
        elif rule["remote_group_id"]:
            remote = tuple(sorted({
                r["ip_address"] for r in svc._rows(
                    "SELECT p.security_groups, f.ip_address FROM ports p JOIN fixed_ips f ON f.port_id = p.id", [])
                if rule["remote_group_id"] in json.loads(r["security_groups"])}))  # fmt: skip
        allows.append(
            Allow(rule["protocol"], rule["port_range_min"], rule["port_range_max"], remote)
        )
    return tuple(allows)

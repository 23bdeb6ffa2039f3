"""What a guest learns about its own networking: Nova's network_data.json (config drive and metadata
service alike) and the lookup behind the metadata service (metadata.py)."""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

from appliance.network.metadata import InstanceData

if TYPE_CHECKING:
    from appliance.network.service import Network


def network_data(svc: Network, server_id: str) -> dict[str, Any]:
    """nova/virt/netutils.py's shape: one link per port, one network per fixed IP, DNS services."""
    links: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for port in svc.server_ports(server_id):
        net = svc.network_row(port["network_id"])
        link = svc.tap(port["id"])
        links.append({"id": link, "vif_id": port["id"], "type": "bridge",
                      "mtu": net["mtu"] if net else 1500, "ethernet_mac_address": port["mac_address"]})  # fmt: skip
        for fixed in svc.fixed_ips(port["id"]):
            subnet = svc.subnet_row(fixed["subnet_id"])
            if subnet is None:
                continue
            entry: dict[str, Any] = {"id": f"network{len(networks)}", "link": link,
                                     "network_id": port["network_id"]}  # fmt: skip
            dns = [{"type": "dns", "address": a} for a in json.loads(subnet["dns_nameservers"])]
            if subnet["enable_dhcp"]:
                entry["type"] = "ipv4_dhcp"
            else:
                cidr = ipaddress.ip_network(subnet["cidr"])
                routes = [
                    {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": subnet["gateway_ip"]}
                ]
                for route in json.loads(subnet["host_routes"]):
                    dest = ipaddress.ip_network(route["destination"])
                    routes.append({"network": str(dest.network_address), "netmask": str(dest.netmask),
                                   "gateway": route["nexthop"]})  # fmt: skip
                entry.update(type="ipv4", ip_address=fixed["ip_address"], netmask=str(cidr.netmask),
                             routes=routes if subnet["gateway_ip"] else routes[1:], services=dns)  # fmt: skip
            networks.append(entry)
            services += [s for s in dns if s not in services]
    return {"links": links, "networks": networks, "services": services}


def instance_at(svc: Network, subnet_id: str, address: str) -> InstanceData | None:
    """The server whose port holds `address` on `subnet_id`, as its metadata service shows it."""
    row = svc._one(
        "SELECT p.id, p.device_id FROM ports p JOIN fixed_ips f ON f.port_id = p.id "
        "WHERE f.subnet_id = ? AND f.ip_address = ? AND p.device_owner LIKE 'compute:%'",
        [subnet_id, address],
    )
    if row is None or not row["device_id"]:
        return None
    described = svc.describe_server(row["device_id"])
    if described is None:
        return None
    meta_data, user_data = described
    floating = svc._one(
        "SELECT floating_ip_address FROM floatingips WHERE port_id = ? AND fixed_ip_address = ?",
        [row["id"], address],
    )
    return InstanceData(
        row["device_id"], meta_data, user_data, network_data(svc, row["device_id"]), address,
        floating["floating_ip_address"] if floating else None,
    )  # fmt: skip

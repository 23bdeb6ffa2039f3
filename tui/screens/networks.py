"""Networks, routers, floating IPs and security groups, one tab each."""

from __future__ import annotations

from typing import Any

from tui import resources
from tui.screens.base import Columns, ListScreen
from tui.widgets.table import Row


def gateway(row: Row) -> str:
    info = row.get("external_gateway_info") or {}
    return str(info.get("network_id", ""))[:8]


NETWORKS: Columns = [
    ("name", "Name", lambda r: r.get("name")),
    ("status", "Status", lambda r: r.get("status")),
    ("subnets", "Subnets", lambda r: len(r.get("subnets") or [])),
    ("external", "External", lambda r: "yes" if r.get("router:external") else ""),
    ("shared", "Shared", lambda r: "yes" if r.get("shared") else ""),
]
ROUTERS: Columns = [
    ("name", "Name", lambda r: r.get("name")),
    ("status", "Status", lambda r: r.get("status")),
    ("gateway", "External gateway", gateway),
]
FLOATING_IPS: Columns = [
    ("address", "Address", lambda r: r.get("floating_ip_address")),
    ("fixed", "Fixed address", lambda r: r.get("fixed_ip_address")),
    ("status", "Status", lambda r: r.get("status")),
    ("port", "Port", lambda r: str(r.get("port_id") or "")[:8]),
]
GROUPS: Columns = [
    ("name", "Name", lambda r: r.get("name")),
    ("rules", "Rules", lambda r: len(r.get("security_group_rules") or [])),
    ("description", "Description", lambda r: r.get("description")),
]


class NetworksScreen(ListScreen):
    REFRESH_SECONDS = 10.0

    def tables(self) -> dict[str, Any]:
        return {
            "networks": ("Networks", NETWORKS, resources.networks),
            "routers": ("Routers", ROUTERS, resources.routers),
            "floating_ips": ("Floating IPs", FLOATING_IPS, resources.floating_ips),
            "security_groups": ("Security groups", GROUPS, resources.security_groups),
        }

"""Neutron v2.0 shapes: resource bodies (list fields never null: OSC iterates them), version and
extension documents, `fields=` projection and attribute filters."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

Row = dict[str, Any]

# What is implemented, as GET /v2.0/extensions lists it (OSC probes for others and expects 404).
EXTENSIONS = (
    ("network-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("external-net", "Neutron external network", "Adds external network attribute to network resource."),
    ("security-group", "security-group", "The security groups extension."),
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"),
    ("standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources."),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources."),
    ("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."),
    ("quotas", "Quota management support", "Expose functions for quotas management per project"),
    ("quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project"),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"),
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks."),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"),
    ("port-security", "Port Security", "Provides port security"),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
)  # fmt: skip


def versions_json(base: str) -> dict[str, Any]:
    return {"versions": [{"id": "v2.0", "status": "CURRENT",
                          "links": [{"rel": "self", "href": f"{base}/networking/v2.0/"}]}]}  # fmt: skip


def resources_json(base: str) -> dict[str, Any]:
    return {
        "resources": [
            {"name": name, "collection": collection,
             "links": [{"rel": "self", "href": f"{base}/networking/v2.0/{collection}"}]}
            for name, collection in (("network", "networks"), ("subnet", "subnets"), ("port", "ports"),
                                     ("security_group", "security-groups"), ("router", "routers"), ("floatingip", "floatingips"),
                                     ("security_group_rule", "security-group-rules"))
        ]
    }  # fmt: skip


def extension_json(alias: str, name: str, description: str) -> dict[str, Any]:
    return {"alias": alias, "name": name, "description": description, "links": [],
            "updated": "2013-01-01T10:00:00-00:00"}  # fmt: skip


def _common(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"], "name": row.get("name", ""), "description": row.get("description", ""),
        "project_id": row["project_id"], "tenant_id": row["project_id"], "created_at": row["created_at"],
        "updated_at": row["updated_at"], "revision_number": row.get("revision_number", 0), "tags": [],
    }  # fmt: skip


def network_json(row: Row, subnets: Sequence[str]) -> dict[str, Any]:
    return {
        **_common(row), "status": "ACTIVE", "admin_state_up": bool(row["admin_state_up"]),
        "shared": bool(row["shared"]), "router:external": bool(row["external"]), "subnets": list(subnets),
        "mtu": row["mtu"], "port_security_enabled": bool(row["port_security"]), "availability_zones": ["nova"],
        "availability_zone_hints": [], "ipv4_address_scope": None, "ipv6_address_scope": None,
        "is_default": False, "l2_adjacency": True,
    }  # fmt: skip


def subnet_json(row: Row) -> dict[str, Any]:
    return {
        **_common(row), "network_id": row["network_id"], "cidr": row["cidr"], "ip_version": 4,
        "gateway_ip": row["gateway_ip"], "enable_dhcp": bool(row["enable_dhcp"]),
        "allocation_pools": json.loads(row["allocation_pools"]), "dns_nameservers": json.loads(row["dns_nameservers"]),
        "host_routes": json.loads(row["host_routes"]), "service_types": [], "subnetpool_id": None,
        "ipv6_address_mode": None, "ipv6_ra_mode": None, "dns_publish_fixed_ip": False,
    }  # fmt: skip


def port_status(row: Row) -> str:
    return "ACTIVE" if row["device_owner"] and row["admin_state_up"] else "DOWN"


def port_json(row: Row, fixed_ips: Sequence[Row]) -> dict[str, Any]:
    return {
        **_common(row), "network_id": row["network_id"], "mac_address": row["mac_address"],
        "fixed_ips": [{"subnet_id": f["subnet_id"], "ip_address": f["ip_address"]} for f in fixed_ips],
        "device_id": row["device_id"], "device_owner": row["device_owner"], "status": port_status(row),
        "admin_state_up": bool(row["admin_state_up"]), "security_groups": json.loads(row["security_groups"]),
        "allowed_address_pairs": json.loads(row["address_pairs"]), "extra_dhcp_opts": [],
        "port_security_enabled": bool(row["port_security"]),
        "binding:vnic_type": "normal", "binding:host_id": "", "binding:profile": {}, "binding:vif_type": "bridge",
        "binding:vif_details": {}, "dns_name": "", "dns_assignment": [], "propagate_uplink_status": False,
    }  # fmt: skip


def rule_json(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"], "security_group_id": row["security_group_id"], "project_id": row["project_id"],
        "tenant_id": row["project_id"], "direction": row["direction"], "ethertype": row["ethertype"],
        "protocol": row["protocol"], "port_range_min": row["port_range_min"], "port_range_max": row["port_range_max"],
        "remote_ip_prefix": row["remote_ip_prefix"], "remote_group_id": row["remote_group_id"],
        "remote_address_group_id": None, "normalized_cidr": row["remote_ip_prefix"], "description": row["description"],
        "created_at": row["created_at"], "updated_at": row["updated_at"], "revision_number": 0, "belongs_to_default_sg": None,
    }  # fmt: skip


def security_group_json(row: Row, rules: Sequence[Row]) -> dict[str, Any]:
    return {**_common(row), "security_group_rules": [rule_json(r) for r in rules], "stateful": True,
            "shared": False}  # fmt: skip


def router_json(row: Row, legs: list[Row], gateway: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": row["id"], "name": row["name"], "description": row["description"], "project_id": row["project_id"],
        "tenant_id": row["project_id"], "status": "ACTIVE", "admin_state_up": bool(row["admin_state_up"]),
        "external_gateway_info": gateway, "routes": json.loads(row["routes"]), "distributed": False, "ha": False,
        "availability_zones": ["nova"], "availability_zone_hints": [], "flavor_id": None, "tags": [],
        "created_at": row["created_at"], "updated_at": row["updated_at"], "revision_number": row["revision_number"],
        "interfaces_info": [{"port_id": leg["port_id"], "subnet_id": leg["subnet_id"], "ip_address": leg["ip_address"]}
                            for leg in legs],
    }  # fmt: skip


def floatingip_json(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"], "project_id": row["project_id"], "tenant_id": row["project_id"],
        "description": row["description"], "floating_network_id": row["floating_network_id"],
        "floating_ip_address": row["floating_ip_address"], "port_id": row["port_id"],
        "fixed_ip_address": row["fixed_ip_address"], "router_id": row["router_id"],
        "status": "ACTIVE" if row["port_id"] else "DOWN", "port_details": None, "port_forwardings": [],
        "tags": [], "created_at": row["created_at"], "updated_at": row["updated_at"],
        "revision_number": row["revision_number"], "dns_domain": "", "dns_name": "", "qos_policy_id": None,
    }  # fmt: skip


def project(body: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """`?fields=a&fields=b`: only those keys (Neutron always returns what was asked for that exists)."""
    if not fields:
        return body
    return {k: v for k, v in body.items() if k in fields}


# Query keys that are not attribute filters.
_NOT_FILTERS = {"fields", "limit", "marker", "page_reverse", "sort_key", "sort_dir", "fields[]"}


def matches(body: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Neutron attribute filters: `?name=x&name=y` matches either; booleans as `true`/`false`."""
    for key, wanted in filters.items():
        if key in _NOT_FILTERS or key not in body:
            continue
        value = body[key]
        if isinstance(value, bool):
            if str(value).lower() not in {w.lower() for w in wanted}:
                return False
        elif isinstance(value, list):
            if key == "fixed_ips":
                continue
            if not any(w in [str(v) for v in value] for w in wanted):
                return False
        elif str(value) not in wanted:
            return False
    return True


def select(items: list[dict[str, Any]], filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    return [i for i in items if matches(i, filters)]


Shape = Callable[[Row], dict[str, Any]]

"""Networks, subnets and ports: validation, project scoping, quotas and state in SQLite. Every change
that the kernel must reflect marks the datapath dirty; one job converges it (datapath.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound, NubeError, OverQuota
from appliance.network import ipam
from appliance.network.datapath import Datapath
from appliance.network.desired import desired_networks
from appliance.network.guests import instance_at, network_data
from appliance.network.metadata import Metadata
from appliance.network.specs import (
    NetworkSpec,
    RouterSpec,
)
from appliance.tasks import Jobs

log = logging.getLogger("nube.network")

SERVICE_TYPE = "network"
DEFAULT_LIMITS = {
    "network": 100, "subnet": 100, "port": 500, "security_group": 10, "router": 10, "floatingip": 50,
}  # fmt: skip
DHCP_OWNER = "network:dhcp"
Row = dict[str, Any]
LimitFn = Callable[[str, str], int]


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def err(cls: type[NubeError], kind: str, message: str) -> NubeError:
    """A domain error carrying Neutron's exception name (the `type` of a NeutronError body)."""
    exc = cls(message)
    exc.kind = kind  # type: ignore[attr-defined]
    return exc


def _text(spec: dict[str, Any], key: str, default: str = "", limit: int = 255) -> str:
    value = spec.get(key, default)
    if value is None:
        value = default
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(
            f"Invalid input for {key}: a string of at most {limit} characters is required."
        )
    return value


def _bool(spec: dict[str, Any], key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise Invalid(f"Invalid input for {key}: a boolean is required.")
    return value


def random_mac() -> str:
    return "fa:16:3e:" + ":".join(f"{random.randint(0, 255):02x}" for _ in range(3))


class Network:
    def __init__(self, db: Database, limit: LimitFn, jobs: Jobs, datapath: Datapath) -> None:
        self.db = db
        self.limit = limit
        self.jobs = jobs
        self.datapath = datapath
        self._dirty = False
        # Set by security groups: (project, ids or names or None) -> group ids.
        self.resolve_groups: Callable[[str, Any], list[str]] = lambda project, wanted: []
        # Set by routers: the router namespaces the datapath should hold.
        self.desired_routers: Callable[[], list[RouterSpec]] = list
        # Set by compute: a server's (meta_data.json, user data) for its metadata service, or None.
        self.describe_server: Callable[[str], tuple[dict[str, Any], bytes | None] | None] = (
            lambda server_id: None
        )
        self.metadata = Metadata(lambda subnet_id, ip: instance_at(self, subnet_id, ip))
        jobs.add_reconciler("network", self.reconcile)

    # -- rows ----------------------------------------------------------------------------------

    def _rows(self, sql: str, params: list[Any] | None = None) -> list[Row]:
        cursor = self.db.execute(sql, params or [])
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def _one(self, sql: str, params: list[Any]) -> Row | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _visible(self, ctx: Context, row: Row, shared: bool = False) -> bool:
        return ctx.is_admin or row["project_id"] == ctx.project_id or shared

    def _owner(self, ctx: Context, spec: dict[str, Any]) -> str:
        if not ctx.can_write:
            raise Forbidden("Policy doesn't allow this operation: the member role is required.")
        project = spec.get("project_id") or spec.get("tenant_id") or ctx.project_id
        if project != ctx.project_id and not ctx.is_admin:
            raise Forbidden("Only an admin may create resources in another project.")
        if not project:
            raise Invalid("A project-scoped token is required.")
        return str(project)

    def _quota(self, project_id: str, resource: str, table: str, extra: str = "") -> None:
        limit = self.limit(project_id, resource)
        used = self.db.execute(
            f"SELECT COUNT(*) FROM {table} WHERE project_id = ?{extra}", [project_id]
        ).fetchone()[0]
        if 0 <= limit <= used:
            raise err(OverQuota, "OverQuota", f"Quota exceeded for resources: ['{resource}'].")

    def _update(self, table: str, row_id: str, changes: dict[str, Any]) -> None:
        changes["updated_at"] = stamp()
        columns = ", ".join(f"{k} = ?" for k in changes)
        with self.db.atomic():
            self.db.execute(
                f"UPDATE {table} SET {columns}, revision_number = revision_number + 1 WHERE id = ?",
                [*changes.values(), row_id],
            )

    # -- networks ------------------------------------------------------------------------------

    def network_row(self, network_id: str) -> Row | None:
        return self._one("SELECT * FROM networks WHERE id = ?", [network_id])

    def get_network(self, ctx: Context, network_id: str) -> Row:
        row = self.network_row(network_id)
        if row is None or not self._visible(ctx, row, bool(row["shared"] or row["external"])):
            raise err(NotFound, "NetworkNotFound", f"Network {network_id} could not be found.")
        return row

    def _writable_network(self, ctx: Context, network_id: str) -> Row:
        row = self.get_network(ctx, network_id)
        if not ctx.is_admin and (row["project_id"] != ctx.project_id or not ctx.can_write):
            raise err(
                Forbidden, "PolicyNotAuthorized", f"Not allowed to change network {network_id}."
            )
        return row

    def create_network(self, ctx: Context, spec: dict[str, Any]) -> Row:
        project = self._owner(ctx, spec)
        shared = _bool(spec, "shared", False)
        external = _bool(spec, "router:external", False)
        if (shared or external) and not ctx.is_admin:
            raise err(
                Forbidden,
                "PolicyNotAuthorized",
                "Only an admin may create shared or external networks.",
            )
        mtu = spec.get("mtu", 1500)
        if not isinstance(mtu, int) or not 68 <= mtu <= 9000:
            raise Invalid("mtu must be an integer between 68 and 9000.")
        self._quota(project, "network", "networks")
        network_id, now = str(uuid.uuid4()), stamp()
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO networks (id, name, description, project_id, admin_state_up, shared, external, mtu, "
                "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [network_id, _text(spec, "name"), _text(spec, "description"), project,
                 int(_bool(spec, "admin_state_up", True)), int(shared), int(external), mtu, now, now],
            )  # fmt: skip
        self.kick()
        return self.get_network(ctx, network_id)

    def list_networks(self, ctx: Context) -> list[Row]:
        if ctx.is_admin:
            return self._rows("SELECT * FROM networks ORDER BY created_at, id")
        return self._rows(
            "SELECT * FROM networks WHERE project_id = ? OR shared = 1 OR external = 1 ORDER BY created_at, id",
            [ctx.project_id or ""],
        )

    def update_network(self, ctx: Context, network_id: str, spec: dict[str, Any]) -> Row:
        self._writable_network(ctx, network_id)
        changes: dict[str, Any] = {}
        for key in ("name", "description"):
            if key in spec:
                changes[key] = _text(spec, key)
        if "admin_state_up" in spec:
            changes["admin_state_up"] = int(_bool(spec, "admin_state_up", True))
        for key, column in (("shared", "shared"), ("router:external", "external")):
            if key in spec:
                if not ctx.is_admin:
                    raise err(Forbidden, "PolicyNotAuthorized", f"Only an admin may change {key}.")
                changes[column] = int(_bool(spec, key, False))
        if changes:
            self._update("networks", network_id, changes)
        return self.get_network(ctx, network_id)

    def delete_network(self, ctx: Context, network_id: str) -> None:
        self._writable_network(ctx, network_id)
        in_use = self._rows(
            "SELECT id FROM ports WHERE network_id = ? AND device_owner != ?",
            [network_id, DHCP_OWNER],
        )
        if in_use:
            raise err(Conflict, "NetworkInUse",
                      f"Unable to complete operation on network {network_id}. There are one or more ports still in use on the network.")  # fmt: skip
        with self.db.atomic():
            self.db.execute("DELETE FROM ports WHERE network_id = ?", [network_id])
            self.db.execute("DELETE FROM subnets WHERE network_id = ?", [network_id])
            self.db.execute("DELETE FROM networks WHERE id = ?", [network_id])
        self.kick()

    def subnet_ids(self, network_id: str) -> list[str]:
        return [r["id"] for r in self._rows(
            "SELECT id FROM subnets WHERE network_id = ? ORDER BY created_at, id", [network_id])]  # fmt: skip

    # -- subnets -------------------------------------------------------------------------------

    def subnet_row(self, subnet_id: str) -> Row | None:
        return self._one("SELECT * FROM subnets WHERE id = ?", [subnet_id])

    def get_subnet(self, ctx: Context, subnet_id: str) -> Row:
        row = self.subnet_row(subnet_id)
        network = self.network_row(row["network_id"]) if row else None
        if row is None or network is None or not self._visible(ctx, row, bool(network["shared"])):
            raise err(NotFound, "SubnetNotFound", f"Subnet {subnet_id} could not be found.")
        return row

    def create_subnet(self, ctx: Context, spec: dict[str, Any]) -> Row:
        project = self._owner(ctx, spec)
        network = self.get_network(ctx, str(spec.get("network_id") or ""))
        if network["project_id"] != project and not ctx.is_admin:
            raise err(
                Forbidden, "PolicyNotAuthorized", "Subnets go on networks of your own project."
            )
        if spec.get("ip_version", 4) not in (4, "4"):
            raise Invalid("Only ip_version 4 is supported here.")
        if spec.get("subnetpool_id") or spec.get("use_default_subnetpool"):
            raise Invalid("Subnet pools are not supported; give a cidr.")
        cidr = ipam.parse_cidr(spec.get("cidr"))
        for other in self._rows("SELECT cidr FROM subnets WHERE network_id = ?", [network["id"]]):
            if cidr.overlaps(ipam.parse_cidr(other["cidr"])):
                raise Invalid(f"Invalid input for operation: Requested subnet with cidr: {cidr} for network: "
                              f"{network['id']} overlaps with another subnet.")  # fmt: skip
        gateway = ipam.gateway(cidr, spec.get("gateway_ip"), "gateway_ip" in spec)
        pools = ipam.pools(cidr, spec.get("allocation_pools"), gateway)
        dns = spec.get("dns_nameservers") or []
        if not isinstance(dns, list) or not all(isinstance(d, str) for d in dns):
            raise Invalid("dns_nameservers must be a list of addresses.")
        routes = spec.get("host_routes") or []
        if not isinstance(routes, list) or not all(
            isinstance(r, dict) and {"destination", "nexthop"} <= set(r) for r in routes
        ):
            raise Invalid("host_routes must be a list of {destination, nexthop}.")
        self._quota(project, "subnet", "subnets")
        subnet_id, now = str(uuid.uuid4()), stamp()
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO subnets (id, name, description, project_id, network_id, cidr, gateway_ip, enable_dhcp, "
                "allocation_pools, dns_nameservers, host_routes, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [subnet_id, _text(spec, "name"), _text(spec, "description"), project, network["id"], str(cidr),
                 gateway, int(_bool(spec, "enable_dhcp", True)), json.dumps(pools), json.dumps(dns),
                 json.dumps([{"destination": r["destination"], "nexthop": r["nexthop"]} for r in routes]), now, now],
            )  # fmt: skip
            if _bool(spec, "enable_dhcp", True):
                self._dhcp_port(network, subnet_id)
        self.kick()
        return self.get_subnet(ctx, subnet_id)

    def _dhcp_port(self, network: Row, subnet_id: str) -> None:
        """The port whose address the DHCP namespace holds (Neutron's `network:dhcp` port)."""
        self._insert_port(
            network["project_id"], network["id"], {"device_owner": DHCP_OWNER,
            "device_id": f"dhcp-{subnet_id}", "fixed_ips": [{"subnet_id": subnet_id}]},
        )  # fmt: skip

    def list_subnets(self, ctx: Context) -> list[Row]:
        if ctx.is_admin:
            return self._rows("SELECT * FROM subnets ORDER BY created_at, id")
        return self._rows(
            "SELECT s.* FROM subnets s JOIN networks n ON n.id = s.network_id WHERE s.project_id = ? "
            "OR n.shared = 1 OR n.external = 1 ORDER BY s.created_at, s.id",
            [ctx.project_id or ""],
        )

    def _writable_subnet(self, ctx: Context, subnet_id: str) -> Row:
        row = self.get_subnet(ctx, subnet_id)
        if not ctx.is_admin and (row["project_id"] != ctx.project_id or not ctx.can_write):
            raise err(
                Forbidden, "PolicyNotAuthorized", f"Not allowed to change subnet {subnet_id}."
            )
        return row

    def update_subnet(self, ctx: Context, subnet_id: str, spec: dict[str, Any]) -> Row:
        row = self._writable_subnet(ctx, subnet_id)
        changes: dict[str, Any] = {}
        for key in ("name", "description"):
            if key in spec:
                changes[key] = _text(spec, key)
        if "dns_nameservers" in spec:
            changes["dns_nameservers"] = json.dumps(spec["dns_nameservers"] or [])
        if "host_routes" in spec:
            changes["host_routes"] = json.dumps(spec["host_routes"] or [])
        if "gateway_ip" in spec:
            changes["gateway_ip"] = ipam.gateway(
                ipam.parse_cidr(row["cidr"]), spec["gateway_ip"], True
            )
        if "enable_dhcp" in spec:
            enable = _bool(spec, "enable_dhcp", True)
            changes["enable_dhcp"] = int(enable)
            if enable and not row["enable_dhcp"]:
                network = self.network_row(row["network_id"])
                assert network is not None
                self._dhcp_port(network, subnet_id)
            elif not enable:
                with self.db.atomic():
                    self.db.execute("DELETE FROM ports WHERE device_id = ?", [f"dhcp-{subnet_id}"])
        if changes:
            self._update("subnets", subnet_id, changes)
            self.kick()
        return self.get_subnet(ctx, subnet_id)

    def delete_subnet(self, ctx: Context, subnet_id: str) -> None:
        self._writable_subnet(ctx, subnet_id)
        in_use = self._rows(
            "SELECT p.id FROM ports p JOIN fixed_ips f ON f.port_id = p.id WHERE f.subnet_id = ? "
            "AND p.device_owner != ?", [subnet_id, DHCP_OWNER],
        )  # fmt: skip
        if in_use:
            raise err(Conflict, "SubnetInUse",
                      f"Unable to complete operation on subnet {subnet_id}: One or more ports have an IP allocation from this subnet.")  # fmt: skip
        with self.db.atomic():
            self.db.execute("DELETE FROM ports WHERE device_id = ?", [f"dhcp-{subnet_id}"])
            self.db.execute("DELETE FROM subnets WHERE id = ?", [subnet_id])
        self.kick()

    # -- ports ---------------------------------------------------------------------------------

    def port_row(self, port_id: str) -> Row | None:
        return self._one("SELECT * FROM ports WHERE id = ?", [port_id])

    def fixed_ips(self, port_id: str) -> list[dict[str, str]]:
        return self._rows(
            "SELECT subnet_id, ip_address FROM fixed_ips WHERE port_id = ? ORDER BY rowid",
            [port_id],
        )

    def get_port(self, ctx: Context, port_id: str) -> Row:
        row = self.port_row(port_id)
        if row is None or not self._visible(ctx, row):
            raise err(NotFound, "PortNotFound", f"Port {port_id} could not be found.")
        return row

    def create_port(self, ctx: Context, spec: dict[str, Any]) -> Row:
        project = self._owner(ctx, spec)
        network = self.get_network(ctx, str(spec.get("network_id") or ""))
        if str(spec.get("device_owner") or "").startswith("network:") and not ctx.is_admin:
            raise err(Forbidden, "PolicyNotAuthorized", "Only an admin may create network:* ports.")
        self._quota(project, "port", "ports", f" AND device_owner != '{DHCP_OWNER}'")
        port_id = self._insert_port(project, network["id"], spec)
        self.kick()
        return self.get_port(ctx, port_id)

    def _insert_port(self, project: str, network_id: str, spec: dict[str, Any]) -> str:
        mac = spec.get("mac_address") or random_mac()
        if not isinstance(mac, str) or len(mac.split(":")) != 6:
            raise Invalid(f"Invalid input for mac_address: '{mac}' is not a valid MAC address.")
        wanted = spec.get("fixed_ips")
        subnets = self._rows(
            "SELECT * FROM subnets WHERE network_id = ? ORDER BY created_at, id", [network_id]
        )
        if wanted is None:
            wanted = [{"subnet_id": subnets[0]["id"]}] if subnets else []
        if not isinstance(wanted, list) or not all(isinstance(w, dict) for w in wanted):
            raise Invalid("fixed_ips must be a list of {subnet_id, ip_address}.")
        by_id = {s["id"]: s for s in subnets}
        owner = str(spec.get("device_owner") or "")
        groups = (
            []
            if owner.startswith("network:")
            else self.resolve_groups(project, spec.get("security_groups"))
        )
        port_id, now = str(uuid.uuid4()), stamp()
        try:
            with self.db.atomic():
                self.db.execute(
                    "INSERT INTO ports (id, name, description, project_id, network_id, mac_address, admin_state_up, "
                    "device_id, device_owner, security_groups, auto_delete, created_at, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [port_id, _text(spec, "name"), _text(spec, "description"), project, network_id, mac.lower(),
                     int(_bool(spec, "admin_state_up", True)), _text(spec, "device_id"), _text(spec, "device_owner"),
                     json.dumps(groups), int(bool(spec.get("auto_delete"))), now, now],
                )  # fmt: skip
                for item in wanted:
                    self._allocate(port_id, network_id, item, by_id)
        except sqlite3.IntegrityError as exc:
            if "mac_address" in str(exc):
                raise err(Conflict, "MacAddressInUse", f"Unable to complete operation for network {network_id}. "
                          f"The mac address {mac} is in use.") from None  # fmt: skip
            raise err(Conflict, "IpAddressInUse", f"Unable to complete operation for network {network_id}. "
                      "The IP address is in use.") from None  # fmt: skip
        return port_id

    def _allocate(
        self, port_id: str, network_id: str, item: dict[str, Any], by_id: dict[str, Row]
    ) -> None:
        subnet_id = item.get("subnet_id")
        if subnet_id is None and item.get("ip_address"):
            for s in by_id.values():
                if ipam.parse_cidr(s["cidr"]).supernet_of(
                    ipam.parse_cidr(f"{item['ip_address']}/32")
                ):
                    subnet_id = s["id"]
        subnet = by_id.get(str(subnet_id))
        if subnet is None:
            raise Invalid(f"Subnet {subnet_id} is not a subnet of network {network_id}.")
        if item.get("ip_address"):
            address = ipam.check_address(ipam.parse_cidr(subnet["cidr"]), item["ip_address"])
        else:
            used = [r["ip_address"] for r in self._rows(
                "SELECT ip_address FROM fixed_ips WHERE subnet_id = ?", [subnet["id"]])]  # fmt: skip
            found = ipam.next_free(json.loads(subnet["allocation_pools"]), used)
            if found is None:
                raise err(Conflict, "IpAddressGenerationFailure",
                          f"No more IP addresses available on network {network_id}.")  # fmt: skip
            address = found
        self.db.execute(
            "INSERT INTO fixed_ips (port_id, subnet_id, ip_address) VALUES (?,?,?)",
            [port_id, subnet["id"], address],
        )

    def list_ports(self, ctx: Context) -> list[Row]:
        if ctx.is_admin:
            return self._rows("SELECT * FROM ports ORDER BY created_at, id")
        return self._rows(
            "SELECT * FROM ports WHERE project_id = ? ORDER BY created_at, id",
            [ctx.project_id or ""],
        )

    def update_port(self, ctx: Context, port_id: str, spec: dict[str, Any]) -> Row:
        row = self.get_port(ctx, port_id)
        if not ctx.can_write or (row["device_owner"] == DHCP_OWNER and not ctx.is_admin):
            raise err(Forbidden, "PolicyNotAuthorized", f"Not allowed to change port {port_id}.")
        changes: dict[str, Any] = {}
        for key in ("name", "description", "device_id", "device_owner"):
            if key in spec:
                changes[key] = _text(spec, key)
        if "admin_state_up" in spec:
            changes["admin_state_up"] = int(_bool(spec, "admin_state_up", True))
        if "security_groups" in spec:
            changes["security_groups"] = json.dumps(
                self.resolve_groups(row["project_id"], spec["security_groups"] or [])
            )
        if changes:
            self._update("ports", port_id, changes)
            self.kick()
        return self.get_port(ctx, port_id)

    def delete_port(self, ctx: Context, port_id: str) -> None:
        row = self.get_port(ctx, port_id)
        if not ctx.can_write or (row["device_owner"] == DHCP_OWNER and not ctx.is_admin):
            raise err(Forbidden, "PolicyNotAuthorized", f"Not allowed to delete port {port_id}.")
        with self.db.atomic():
            self.db.execute("UPDATE floatingips SET port_id = NULL, fixed_ip_address = NULL, router_id = NULL "
                            "WHERE port_id = ?", [port_id])  # fmt: skip
            self.db.execute("DELETE FROM ports WHERE id = ?", [port_id])
        self.kick()

    # -- what compute asks ---------------------------------------------------------------------

    def bind_ports(
        self, ctx: Context, server_id: str, hostname: str, requests: list[dict[str, Any]]
    ) -> list[str]:
        """Create or take the ports a server asked for (`{"uuid": net}`, `{"port": id}`, or
        `{"auto": True}`: the project's only network, if it has exactly one); their ids."""
        made: list[str] = []
        bound: list[str] = []
        try:
            for request in requests:
                if request.get("port"):
                    port = self.get_port(ctx, str(request["port"]))
                    if port["device_id"]:
                        raise err(Conflict, "PortInUse", f"Port {port['id']} is still in use.")
                    self._update(
                        "ports",
                        port["id"],
                        {"device_id": server_id, "device_owner": "compute:nova"},
                    )
                    bound.append(port["id"])
                    continue
                if request.get("auto"):
                    own = [n for n in self.list_networks(ctx) if n["project_id"] == ctx.project_id]
                    if len(own) != 1:
                        continue
                    network_id = own[0]["id"]
                else:
                    network_id = self.get_network(ctx, str(request.get("uuid"))).get("id", "")
                spec: dict[str, Any] = {
                    "device_id": server_id, "device_owner": "compute:nova", "auto_delete": True}  # fmt: skip
                if request.get("security_groups") is not None:
                    spec["security_groups"] = request["security_groups"]
                if request.get("fixed_ip"):
                    spec["fixed_ips"] = [{"ip_address": request["fixed_ip"]}]
                assert ctx.project_id is not None
                self._quota(ctx.project_id, "port", "ports", f" AND device_owner != '{DHCP_OWNER}'")
                made.append(self._insert_port(ctx.project_id, network_id, spec))
                bound.append(made[-1])
        except Exception:
            self.release_ports(server_id, only=made)
            raise
        self.kick()
        return bound

    def release_port(self, server_id: str, port_id: str) -> None:
        """One port off a server (interface detach): deleted if Nova made it, else unbound."""
        with self.db.atomic():
            self.db.execute("UPDATE floatingips SET port_id = NULL, fixed_ip_address = NULL, router_id = NULL "
                            "WHERE port_id = ? AND port_id IN (SELECT id FROM ports WHERE auto_delete = 1)",
                            [port_id])  # fmt: skip
            self.db.execute(
                "DELETE FROM ports WHERE id = ? AND device_id = ? AND auto_delete = 1",
                [port_id, server_id],
            )
            self.db.execute(
                "UPDATE ports SET device_id = '', device_owner = '' WHERE id = ? AND device_id = ?",
                [port_id, server_id],
            )
        self.kick()

    def server_ports(self, server_id: str) -> list[Row]:
        return self._rows(
            "SELECT * FROM ports WHERE device_id = ? AND device_owner LIKE 'compute:%' ORDER BY created_at, id",
            [server_id],
        )

    def release_ports(self, server_id: str, only: list[str] | None = None) -> None:
        """A deleted server's ports go: those Nova made are deleted, those the user made are unbound."""
        with self.db.atomic():
            if only is not None:
                for port_id in only:
                    self.db.execute("DELETE FROM ports WHERE id = ?", [port_id])
            else:
                self.db.execute("UPDATE floatingips SET port_id = NULL, fixed_ip_address = NULL, router_id = NULL "
                                "WHERE port_id IN (SELECT id FROM ports WHERE device_id = ? AND auto_delete = 1)",
                                [server_id])  # fmt: skip
                self.db.execute(
                    "DELETE FROM ports WHERE device_id = ? AND auto_delete = 1", [server_id]
                )
                self.db.execute("UPDATE ports SET device_id = '', device_owner = '' WHERE device_id = ?",
                                [server_id])  # fmt: skip
        self.kick()

    def security_group_names(self, server_id: str) -> list[str]:
        """Nova's `security_groups` of a server: the names of the groups on its ports, once each."""
        ids: list[str] = []
        for port in self.server_ports(server_id):
            ids += [g for g in json.loads(port["security_groups"]) if g not in ids]
        names = {r["id"]: r["name"] for r in self._rows(
            f"SELECT id, name FROM security_groups WHERE id IN ({','.join('?' * len(ids))})", ids)}  # fmt: skip
        return [names[g] for g in ids if g in names]

    def addresses(self, server_id: str) -> dict[str, list[dict[str, Any]]]:
        """Nova's `addresses`: network name -> the fixed IPs of the server's ports there."""
        result: dict[str, list[dict[str, Any]]] = {}
        for row in self._rows(
            "SELECT n.name AS network, n.id AS network_id, p.mac_address, f.ip_address, "
            "fip.floating_ip_address AS floating FROM ports p "
            "JOIN networks n ON n.id = p.network_id JOIN fixed_ips f ON f.port_id = p.id "
            "LEFT JOIN floatingips fip ON fip.port_id = p.id AND fip.fixed_ip_address = f.ip_address "
            "WHERE p.device_id = ? ORDER BY p.created_at, p.id", [server_id],
        ):  # fmt: skip
            entries = result.setdefault(row["network"] or row["network_id"], [])
            entries.append({"version": 4, "addr": row["ip_address"], "OS-EXT-IPS:type": "fixed",
                            "OS-EXT-IPS-MAC:mac_addr": row["mac_address"]})  # fmt: skip
            if row["floating"]:
                entries.append({"version": 4, "addr": row["floating"], "OS-EXT-IPS:type": "floating",
                                "OS-EXT-IPS-MAC:mac_addr": row["mac_address"]})  # fmt: skip
        return result

    # -- the datapath --------------------------------------------------------------------------

    def desired(self) -> list[NetworkSpec]:
        return desired_networks(self)

    def kick(self) -> None:
        """The kernel must catch up with the rows: converge now, or again after the running pass."""
        self._dirty = True
        if self.jobs.busy("network", "datapath"):
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a script or unit test): the next kick or reconcile converges
        try:
            self.jobs.submit("network", "datapath", "converge", self._converge)
        except Conflict:
            pass  # shutting down: reconcile converges at the next start

    async def _converge(self) -> None:
        while self._dirty:
            self._dirty = False
            desired = self.desired()
            await asyncio.to_thread(self.datapath.converge, desired, self.desired_routers())
            if self.datapath.live:
                names = self.datapath.names
                await self.metadata.sync(
                    {d.subnet_id: names.namespace(d.subnet_id) for n in desired for d in n.dhcp}
                )

    def network_data(self, server_id: str) -> dict[str, Any]:
        return network_data(self, server_id)

    async def settled(self) -> None:
        """Wait until the datapath holds what the rows say (compute waits before plugging a tap)."""
        task = self.jobs.current("network", "datapath")
        if task is not None:
            await asyncio.wait([task])

    async def reconcile(self) -> None:
        self._dirty = True
        await self._converge()

    def bridge(self, network_id: str) -> str:
        return self.datapath.names.bridge(network_id)

    def tap(self, port_id: str) -> str:
        return self.datapath.names.tap(port_id)

"""Networks, subnets and ports: validation, project scoping, quotas and state in SQLite. Every change
that the kernel must reflect marks the datapath dirty; one job converges it (datapath.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound, OverQuota
from appliance.network import ipam
from appliance.network.common import _bool, _text, err, stamp
from appliance.network.datapath import Datapath
from appliance.network.desired import DHCP_OWNER, desired_networks
from appliance.network.guests import instance_at, network_data
from appliance.network.metadata import Metadata
from appliance.network.ports import Ports
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
Row = dict[str, Any]
LimitFn = Callable[[str, str], int]


class Network(Ports):
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
                "port_security, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [network_id, _text(spec, "name"), _text(spec, "description"), project,
                 int(_bool(spec, "admin_state_up", True)), int(shared), int(external), mtu,
                 int(_bool(spec, "port_security_enabled", True)), now, now],
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
        if "port_security_enabled" in spec:  # the default of ports made from now on
            changes["port_security"] = int(_bool(spec, "port_security_enabled", True))
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
            task = self.jobs.submit("network", "datapath", "converge", self._converge)
        except Conflict:
            return  # shutting down: reconcile converges at the next start
        # A kick that lands after the pass's last look at `_dirty` (while the job is still marked
        # busy) must not be lost: look again once the job is over.
        task.add_done_callback(lambda _: self._dirty and self.kick())

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

"""Floating IPs: an address of an external network (held by a `network:floatingip` port) that the
router between that network and a port's subnet DNATs to the port's fixed IP (datapath.py)."""

from __future__ import annotations

import uuid
from typing import Any

from appliance.context import Context
from appliance.errors import Forbidden, Invalid, NotFound
from appliance.network.routers import INTERFACE_OWNER
from appliance.network.service import Network, Row, _text, err, stamp


class FloatingIps:
    def __init__(self, network: Network) -> None:
        self.net = network
        self.db = network.db

    def get(self, ctx: Context, fip_id: str) -> Row:
        row = self.net._one("SELECT * FROM floatingips WHERE id = ?", [fip_id])
        if row is None or not (ctx.is_admin or row["project_id"] == ctx.project_id):
            raise err(NotFound, "FloatingIPNotFound", f"Floating IP {fip_id} could not be found")
        return row

    def list_fips(self, ctx: Context) -> list[Row]:
        if ctx.is_admin:
            return self.net._rows("SELECT * FROM floatingips ORDER BY created_at, id")
        return self.net._rows(
            "SELECT * FROM floatingips WHERE project_id = ? ORDER BY created_at, id",
            [ctx.project_id or ""],
        )

    def create(self, ctx: Context, spec: dict[str, Any]) -> Row:
        project = self.net._owner(ctx, spec)
        network = self.net.get_network(ctx, str(spec.get("floating_network_id") or ""))
        if not network["external"]:
            raise Invalid(
                f"Bad floatingip request: Network {network['id']} is not a valid external network."
            )
        self.net._quota(project, "floatingip", "floatingips")
        fip_id, now = str(uuid.uuid4()), stamp()
        port_spec: dict[str, Any] = {"device_id": fip_id, "device_owner": "network:floatingip"}
        if spec.get("floating_ip_address"):
            port_spec["fixed_ips"] = [{"ip_address": spec["floating_ip_address"]}]
        port_id = self.net._insert_port("", network["id"], port_spec)
        address = self.net.fixed_ips(port_id)[0]["ip_address"]
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO floatingips (id, project_id, description, floating_network_id, floating_port_id, "
                "floating_ip_address, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                [fip_id, project, _text(spec, "description"), network["id"], port_id, address, now, now],
            )  # fmt: skip
        if spec.get("port_id"):
            self._associate(ctx, fip_id, spec)
        return self.get(ctx, fip_id)

    def update(self, ctx: Context, fip_id: str, spec: dict[str, Any]) -> Row:
        self.get(ctx, fip_id)
        if not ctx.can_write:
            raise Forbidden("Policy doesn't allow this operation: the member role is required.")
        if "description" in spec:
            self.net._update("floatingips", fip_id, {"description": _text(spec, "description")})
        if "port_id" in spec:
            self._associate(ctx, fip_id, spec)
        return self.get(ctx, fip_id)

    def _associate(self, ctx: Context, fip_id: str, spec: dict[str, Any]) -> None:
        fip = self.get(ctx, fip_id)
        changes: dict[str, Any] = {"port_id": None, "fixed_ip_address": None, "router_id": None}
        if spec.get("port_id"):
            port = self.net.get_port(ctx, str(spec["port_id"]))
            fixed = [f for f in self.net.fixed_ips(port["id"])
                     if not spec.get("fixed_ip_address") or f["ip_address"] == spec["fixed_ip_address"]]  # fmt: skip
            if not fixed:
                raise Invalid(f"Port {port['id']} has no fixed IP to map the floating IP to.")
            router = self.net._one(
                "SELECT r.id FROM routers r JOIN ports g ON g.id = r.gateway_port_id JOIN ports i ON i.device_id = r.id "
                "AND i.device_owner = ? JOIN fixed_ips f ON f.port_id = i.id WHERE g.network_id = ? AND f.subnet_id = ?",
                [INTERFACE_OWNER, fip["floating_network_id"], fixed[0]["subnet_id"]],
            )  # fmt: skip
            if router is None:
                raise err(NotFound, "ExternalGatewayForFloatingIPNotFound",
                          f"External network {fip['floating_network_id']} is not reachable from subnet "
                          f"{fixed[0]['subnet_id']}. Therefore, cannot associate Port {port['id']} with a Floating IP.")  # fmt: skip
            changes = {
                "port_id": port["id"],
                "fixed_ip_address": fixed[0]["ip_address"],
                "router_id": router["id"],
            }
        self.net._update("floatingips", fip_id, changes)
        self.net.kick()

    def delete(self, ctx: Context, fip_id: str) -> None:
        fip = self.get(ctx, fip_id)
        if not ctx.can_write:
            raise Forbidden("Policy doesn't allow this operation: the member role is required.")
        with self.db.atomic():
            self.db.execute("DELETE FROM floatingips WHERE id = ?", [fip_id])
            self.db.execute("DELETE FROM ports WHERE id = ?", [fip["floating_port_id"]])
        self.net.kick()

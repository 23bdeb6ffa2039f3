"""Routers between a project's subnets: each interface is a `network:router_interface` port holding the
subnet's gateway IP; the datapath gives each router a forwarding namespace (datapath.py). External
gateways, SNAT and floating IPs are not here yet."""

from __future__ import annotations

import ipaddress
import json
import uuid
from typing import Any

from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound
from appliance.network import ipam
from appliance.network.service import Network, Row, _bool, _text, err, stamp
from appliance.network.specs import RouterLeg, RouterSpec

INTERFACE_OWNER = "network:router_interface"


class Routers:
    def __init__(self, network: Network) -> None:
        self.net = network
        self.db = network.db
        network.desired_routers = self.desired

    def get(self, ctx: Context, router_id: str) -> Row:
        row = self.net._one("SELECT * FROM routers WHERE id = ?", [router_id])
        if row is None or not (ctx.is_admin or row["project_id"] == ctx.project_id):
            raise err(NotFound, "RouterNotFound", f"Router {router_id} could not be found")
        return row

    def _writable(self, ctx: Context, router_id: str) -> Row:
        row = self.get(ctx, router_id)
        if not ctx.can_write:
            raise Forbidden("Policy doesn't allow this operation: the member role is required.")
        return row

    def list_routers(self, ctx: Context) -> list[Row]:
        if ctx.is_admin:
            return self.net._rows("SELECT * FROM routers ORDER BY created_at, id")
        return self.net._rows(
            "SELECT * FROM routers WHERE project_id = ? ORDER BY created_at, id",
            [ctx.project_id or ""],
        )

    def create(self, ctx: Context, spec: dict[str, Any]) -> Row:
        project = self.net._owner(ctx, spec)
        self.net._quota(project, "router", "routers")
        router_id, now = str(uuid.uuid4()), stamp()
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO routers (id, name, description, project_id, admin_state_up, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?)",
                [router_id, _text(spec, "name"), _text(spec, "description"), project,
                 int(_bool(spec, "admin_state_up", True)), now, now],
            )  # fmt: skip
        if "external_gateway_info" in spec:
            self.set_gateway(ctx, router_id, spec["external_gateway_info"])
        return self.get(ctx, router_id)

    def set_gateway(self, ctx: Context, router_id: str, info: Any) -> None:
        """Plug the router into an external network (a `network:router_gateway` port), or unplug it."""
        router = self._writable(ctx, router_id)
        network_id = (info or {}).get("network_id") if isinstance(info, dict | None) else None
        if isinstance(info, dict) and "enable_snat" in info:
            if not ctx.is_admin:  # Neutron's policy: only an admin chooses
                raise err(Forbidden, "PolicyNotAuthorized",
                          "Only an admin may set enable_snat of a router's gateway.")  # fmt: skip
            snat = _bool(info, "enable_snat", True)
            self.net._update("routers", router_id, {"enable_snat": int(snat)})
        if router["gateway_port_id"]:
            if network_id and self.net.port_row(router["gateway_port_id"]) is not None:
                port = self.net.port_row(router["gateway_port_id"])
                if port is not None and port["network_id"] == network_id:
                    return
            if self.net._rows("SELECT id FROM floatingips WHERE router_id = ?", [router_id]):
                raise err(Conflict, "RouterExternalGatewayInUseByFloatingIp",
                          f"Gateway cannot be updated for router {router_id}: floating IPs use it.")  # fmt: skip
            with self.db.atomic():
                self.db.execute("DELETE FROM ports WHERE id = ?", [router["gateway_port_id"]])
                self.db.execute(
                    "UPDATE routers SET gateway_port_id = NULL WHERE id = ?", [router_id]
                )
        if network_id:
            network = self.net.get_network(ctx, str(network_id))
            if not network["external"]:
                raise Invalid(
                    f"Bad router request: Network {network_id} is not an external network."
                )
            port_id = self.net._insert_port("", network["id"], {"device_id": router_id,
                                                               "device_owner": "network:router_gateway"})  # fmt: skip
            with self.db.atomic():
                self.db.execute(
                    "UPDATE routers SET gateway_port_id = ? WHERE id = ?", [port_id, router_id]
                )
        self.net.kick()

    def update(self, ctx: Context, router_id: str, spec: dict[str, Any]) -> Row:
        self._writable(ctx, router_id)
        if "external_gateway_info" in spec:
            self.set_gateway(ctx, router_id, spec["external_gateway_info"])
        changes: dict[str, Any] = {}
        for key in ("name", "description"):
            if key in spec:
                changes[key] = _text(spec, key)
        if "admin_state_up" in spec:
            changes["admin_state_up"] = int(_bool(spec, "admin_state_up", True))
        if "routes" in spec:
            changes["routes"] = json.dumps(self._routes(router_id, spec["routes"]))
        if changes:
            self.net._update("routers", router_id, changes)
            self.net.kick()
        return self.get(ctx, router_id)

    def _routes(self, router_id: str, routes: Any) -> list[dict[str, str]]:
        """Static routes (extraroute): each next hop must be on one of the router's subnets."""
        if routes is None:
            return []
        if not isinstance(routes, list) or not all(
            isinstance(r, dict) and {"destination", "nexthop"} <= set(r) for r in routes
        ):
            raise Invalid("routes must be a list of {destination, nexthop}.")
        connected = [ipam.parse_cidr(s["cidr"]) for s in self._subnets(router_id)]
        result: list[dict[str, str]] = []
        for route in routes:
            try:
                destination = ipaddress.ip_network(str(route["destination"]), strict=True)
                nexthop = ipaddress.ip_address(str(route["nexthop"]))
            except ValueError as exc:
                raise Invalid(f"Invalid format for routes: {exc}") from None
            if destination.version != 4 or nexthop.version != 4:
                raise Invalid("Only IPv4 routes are supported here.")
            if not any(nexthop in cidr for cidr in connected):
                raise err(Invalid, "InvalidRoutes", f"Invalid format for routes: {route}, the nexthop "
                          "is not connected with router.")  # fmt: skip
            entry = {"destination": str(destination), "nexthop": str(nexthop)}
            if entry not in result:
                result.append(entry)
        return result

    def _subnets(self, router_id: str) -> list[Row]:
        router = self.net._one("SELECT gateway_port_id FROM routers WHERE id = ?", [router_id])
        ids = [leg["subnet_id"] for leg in self.interfaces(router_id)]
        if router and router["gateway_port_id"]:
            ids += [f["subnet_id"] for f in self.net.fixed_ips(router["gateway_port_id"])]
        return [s for i in ids if (s := self.net.subnet_row(i)) is not None]

    def delete(self, ctx: Context, router_id: str) -> None:
        self._writable(ctx, router_id)
        if self.interfaces(router_id):
            raise err(Conflict, "RouterInUse", f"Router {router_id} still has ports")
        self.set_gateway(ctx, router_id, None)
        with self.db.atomic():
            self.db.execute("DELETE FROM routers WHERE id = ?", [router_id])
        self.net.kick()

    def interfaces(self, router_id: str) -> list[Row]:
        return self.net._rows(
            "SELECT p.id AS port_id, p.network_id, p.mac_address, f.subnet_id, f.ip_address FROM ports p "
            "JOIN fixed_ips f ON f.port_id = p.id WHERE p.device_id = ? AND p.device_owner = ? ORDER BY p.id",
            [router_id, INTERFACE_OWNER],
        )

    def _answer(self, router: Row, port_id: str) -> dict[str, Any]:
        fixed = self.net.fixed_ips(port_id)
        port = self.net.port_row(port_id)
        assert port is not None
        return {"id": router["id"], "tenant_id": router["project_id"], "project_id": router["project_id"],
                "port_id": port_id, "subnet_id": fixed[0]["subnet_id"] if fixed else None,
                "subnet_ids": [f["subnet_id"] for f in fixed], "network_id": port["network_id"]}  # fmt: skip

    def add_interface(self, ctx: Context, router_id: str, body: dict[str, Any]) -> dict[str, Any]:
        router = self._writable(ctx, router_id)
        if body.get("port_id"):
            port = self.net.get_port(ctx, str(body["port_id"]))
            if port["device_id"]:
                raise err(Conflict, "PortInUse", f"Port {port['id']} is in use.")
            self.net._update(
                "ports", port["id"], {"device_id": router_id, "device_owner": INTERFACE_OWNER}
            )
            self.net.kick()
            return self._answer(router, port["id"])
        subnet = self.net.get_subnet(ctx, str(body.get("subnet_id") or ""))
        if not subnet["gateway_ip"]:
            raise Invalid(f"Bad router request: Subnet {subnet['id']} does not have a gateway IP.")
        for leg in self.interfaces(router_id):
            if leg["subnet_id"] == subnet["id"]:
                raise Invalid(f"Router already has a port on subnet {subnet['id']}.")
        spec = {"device_id": router_id, "device_owner": INTERFACE_OWNER,
                "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": subnet["gateway_ip"]}]}  # fmt: skip
        port_id = self.net._insert_port(router["project_id"], subnet["network_id"], spec)
        self.net.kick()
        return self._answer(router, port_id)

    def remove_interface(
        self, ctx: Context, router_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        router = self._writable(ctx, router_id)
        for leg in self.interfaces(router_id):
            if leg["port_id"] == body.get("port_id") or leg["subnet_id"] == body.get("subnet_id"):
                answer = self._answer(router, leg["port_id"])
                with self.db.atomic():
                    self.db.execute("DELETE FROM ports WHERE id = ?", [leg["port_id"]])
                self.net.kick()
                return answer
        raise err(NotFound, "RouterInterfaceNotFoundForSubnet",
                  f"Router {router_id} has no interface on {body.get('subnet_id') or body.get('port_id')}")  # fmt: skip

    def gateway_info(self, router: Row) -> dict[str, Any] | None:
        port = self.net.port_row(router["gateway_port_id"]) if router["gateway_port_id"] else None
        if port is None:
            return None
        return {"network_id": port["network_id"], "enable_snat": bool(router["enable_snat"]),
                "external_fixed_ips": self.net.fixed_ips(port["id"])}  # fmt: skip

    def desired(self) -> list[RouterSpec]:
        specs = []
        for router in self.net._rows("SELECT * FROM routers ORDER BY id"):
            legs = []
            cidrs = []
            for leg in self.interfaces(router["id"]):
                subnet = self.net.subnet_row(leg["subnet_id"])
                if subnet is None:
                    continue
                cidrs.append(subnet["cidr"])
                prefixlen = ipam.parse_cidr(subnet["cidr"]).prefixlen
                legs.append(
                    RouterLeg(
                        leg["port_id"],
                        leg["network_id"],
                        leg["mac_address"],
                        leg["ip_address"],
                        prefixlen,
                    )
                )
            gateway = via = None
            port = (
                self.net.port_row(router["gateway_port_id"]) if router["gateway_port_id"] else None
            )
            fixed = self.net.fixed_ips(port["id"]) if port else []
            if port is not None and fixed:
                subnet = self.net.subnet_row(fixed[0]["subnet_id"])
                assert subnet is not None
                gateway = RouterLeg(port["id"], port["network_id"], port["mac_address"], fixed[0]["ip_address"],
                                    ipam.parse_cidr(subnet["cidr"]).prefixlen)  # fmt: skip
                via = subnet["gateway_ip"]
            floating = tuple(
                (f["floating_ip_address"], f["fixed_ip_address"]) for f in self.net._rows(
                    "SELECT * FROM floatingips WHERE router_id = ? AND fixed_ip_address IS NOT NULL ORDER BY id",
                    [router["id"]])
            ) if gateway else ()  # fmt: skip
            specs.append(
                RouterSpec(
                    router["id"],
                    tuple(legs),
                    gateway,
                    via,
                    tuple(cidrs) if gateway and router["enable_snat"] else (),
                    floating,
                    tuple((r["destination"], r["nexthop"]) for r in json.loads(router["routes"])),
                )
            )
        return specs

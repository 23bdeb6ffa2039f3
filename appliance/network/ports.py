"""Ports: their rows and fixed IPs, and what compute asks of them (bind to a server, release,
addresses). A mixin of the Network service (service.py), split out by size."""

from __future__ import annotations

import ipaddress
import json
import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound
from appliance.network import ipam
from appliance.network.common import _bool, _text, err, random_mac, stamp
from appliance.network.desired import DHCP_OWNER

if TYPE_CHECKING:
    from appliance.network.service import Network, Row


NO_SECURITY_NO_GROUPS = "Port security must be enabled and port must have an IP address in order to use security groups."
NO_SECURITY_NO_PAIRS = (
    "Port Security must be enabled in order to have allowed address pairs on a port."
)


def address_pairs(value: Any, mac: str) -> list[dict[str, str]]:
    """Neutron's allowed_address_pairs: IPv4 addresses or CIDRs, each with a MAC (the port's own
    by default) that may also send from the port."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
        raise Invalid("allowed_address_pairs must be a list of {ip_address, mac_address}.")
    pairs: list[dict[str, str]] = []
    for pair in value:
        try:
            net = ipaddress.ip_network(str(pair.get("ip_address")), strict=False)
        except ValueError:
            raise Invalid(f"Invalid input for allowed_address_pairs: '{pair.get('ip_address')}' is not "
                          "a valid IP address or CIDR.") from None  # fmt: skip
        if net.version != 4:
            raise Invalid("Only IPv4 allowed address pairs are supported here.")
        pair_mac = str(pair.get("mac_address") or mac).lower()
        if len(pair_mac.split(":")) != 6:
            raise Invalid(
                f"Invalid input for mac_address: '{pair_mac}' is not a valid MAC address."
            )
        ip = str(net.network_address) if net.prefixlen == 32 else str(net)
        entry = {"ip_address": ip, "mac_address": pair_mac}
        if entry in pairs:
            raise err(Invalid, "DuplicateAddressPairInRequest",
                      f"Request contains duplicate address pair: mac_address {pair_mac} ip_address {ip}.")  # fmt: skip
        pairs.append(entry)
    return pairs


class Ports:
    # -- ports ---------------------------------------------------------------------------------

    def port_row(self: Network, port_id: str) -> Row | None:
        return self._one("SELECT * FROM ports WHERE id = ?", [port_id])

    def fixed_ips(self: Network, port_id: str) -> list[dict[str, str]]:
        return self._rows(
            "SELECT subnet_id, ip_address FROM fixed_ips WHERE port_id = ? ORDER BY rowid",
            [port_id],
        )

    def get_port(self: Network, ctx: Context, port_id: str) -> Row:
        row = self.port_row(port_id)
        if row is None or not self._visible(ctx, row):
            raise err(NotFound, "PortNotFound", f"Port {port_id} could not be found.")
        return row

    def create_port(self: Network, ctx: Context, spec: dict[str, Any]) -> Row:
        project = self._owner(ctx, spec)
        network = self.get_network(ctx, str(spec.get("network_id") or ""))
        if str(spec.get("device_owner") or "").startswith("network:") and not ctx.is_admin:
            raise err(Forbidden, "PolicyNotAuthorized", "Only an admin may create network:* ports.")
        self._quota(project, "port", "ports", f" AND device_owner != '{DHCP_OWNER}'")
        port_id = self._insert_port(project, network["id"], spec)
        self.kick()
        return self.get_port(ctx, port_id)

    def _insert_port(self: Network, project: str, network_id: str, spec: dict[str, Any]) -> str:
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
        network = self.network_row(network_id)
        secure = _bool(spec, "port_security_enabled", bool(network and network["port_security"]))
        if owner.startswith("network:"):
            groups: list[str] = []
        elif not secure:
            if spec.get("security_groups"):
                raise err(
                    Invalid, "PortSecurityAndIPRequiredForSecurityGroups", NO_SECURITY_NO_GROUPS
                )
            groups = []
        else:
            groups = self.resolve_groups(project, spec.get("security_groups"))
        pairs = address_pairs(spec.get("allowed_address_pairs"), mac.lower())
        if pairs and not secure:
            raise err(Conflict, "AddressPairAndPortSecurityRequired", NO_SECURITY_NO_PAIRS)
        port_id, now = str(uuid.uuid4()), stamp()
        try:
            with self.db.atomic():
                self.db.execute(
                    "INSERT INTO ports (id, name, description, project_id, network_id, mac_address, admin_state_up, "
                    "device_id, device_owner, security_groups, auto_delete, port_security, address_pairs, created_at, "
                    "updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [port_id, _text(spec, "name"), _text(spec, "description"), project, network_id, mac.lower(),
                     int(_bool(spec, "admin_state_up", True)), _text(spec, "device_id"), _text(spec, "device_owner"),
                     json.dumps(groups), int(bool(spec.get("auto_delete"))), int(secure), json.dumps(pairs), now, now],
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
        self: Network, port_id: str, network_id: str, item: dict[str, Any], by_id: dict[str, Row]
    ) -> None:
        subnet_id = item.get("subnet_id")
        if subnet_id is None and item.get("ip_address"):
            try:
                wanted_ip = ipaddress.ip_address(str(item["ip_address"]))
            except ValueError:
                raise Invalid(f"Invalid input for ip_address: '{item['ip_address']}' is not a "
                              "valid IP address.") from None  # fmt: skip
            for s in by_id.values():
                if wanted_ip in ipam.parse_cidr(s["cidr"]):
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

    def list_ports(self: Network, ctx: Context) -> list[Row]:
        if ctx.is_admin:
            return self._rows("SELECT * FROM ports ORDER BY created_at, id")
        return self._rows(
            "SELECT * FROM ports WHERE project_id = ? ORDER BY created_at, id",
            [ctx.project_id or ""],
        )

    def update_port(self: Network, ctx: Context, port_id: str, spec: dict[str, Any]) -> Row:
        row = self.get_port(ctx, port_id)
        if not ctx.can_write or (row["device_owner"] == DHCP_OWNER and not ctx.is_admin):
            raise err(Forbidden, "PolicyNotAuthorized", f"Not allowed to change port {port_id}.")
        changes: dict[str, Any] = {}
        for key in ("name", "description", "device_id", "device_owner"):
            if key in spec:
                changes[key] = _text(spec, key)
        if "admin_state_up" in spec:
            changes["admin_state_up"] = int(_bool(spec, "admin_state_up", True))
        secure = _bool(spec, "port_security_enabled", bool(row["port_security"]))
        groups = json.loads(row["security_groups"])
        if "security_groups" in spec:
            groups = self.resolve_groups(row["project_id"], spec["security_groups"] or [])
            changes["security_groups"] = json.dumps(groups)
        if not secure and groups:
            raise err(Conflict, "PortSecurityPortHasSecurityGroup", "Port has security group associated. "
                      "Cannot disable port security or ip address until security group is removed.")  # fmt: skip
        pairs = json.loads(row["address_pairs"])
        if "allowed_address_pairs" in spec:
            pairs = address_pairs(spec["allowed_address_pairs"], row["mac_address"])
            changes["address_pairs"] = json.dumps(pairs)
        if pairs and not secure:
            raise err(Conflict, "AddressPairAndPortSecurityRequired", NO_SECURITY_NO_PAIRS)
        changes["port_security"] = int(secure)
        with self.db.atomic():
            self._update("ports", port_id, changes)
            if "fixed_ips" in spec:
                self._reallocate(row, spec["fixed_ips"])
        self.kick()
        return self.get_port(ctx, port_id)

    def _reallocate(self: Network, port: Row, wanted: Any) -> None:
        """A port's fixed IPs replaced by those asked for (kept ones keep their address)."""
        if not isinstance(wanted, list) or not all(isinstance(w, dict) for w in wanted):
            raise Invalid("fixed_ips must be a list of {subnet_id, ip_address}.")
        subnets = self._rows("SELECT * FROM subnets WHERE network_id = ?", [port["network_id"]])
        self.db.execute("DELETE FROM fixed_ips WHERE port_id = ?", [port["id"]])
        try:
            for item in wanted:
                self._allocate(port["id"], port["network_id"], item, {s["id"]: s for s in subnets})
        except sqlite3.IntegrityError:
            raise err(Conflict, "IpAddressInUse", f"Unable to complete operation for network "
                      f"{port['network_id']}. The IP address is in use.") from None  # fmt: skip

    def delete_port(self: Network, ctx: Context, port_id: str) -> None:
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
        self: Network, ctx: Context, server_id: str, hostname: str, requests: list[dict[str, Any]]
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

    def release_port(self: Network, server_id: str, port_id: str) -> None:
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

    def server_ports(self: Network, server_id: str) -> list[Row]:
        return self._rows(
            "SELECT * FROM ports WHERE device_id = ? AND device_owner LIKE 'compute:%' ORDER BY created_at, id",
            [server_id],
        )

    def release_ports(self: Network, server_id: str, only: list[str] | None = None) -> None:
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

    def security_group_names(self: Network, server_id: str) -> list[str]:
        """Nova's `security_groups` of a server: the names of the groups on its ports, once each."""
        ids: list[str] = []
        for port in self.server_ports(server_id):
            ids += [g for g in json.loads(port["security_groups"]) if g not in ids]
        names = {r["id"]: r["name"] for r in self._rows(
            f"SELECT id, name FROM security_groups WHERE id IN ({','.join('?' * len(ids))})", ids)}  # fmt: skip
        return [names[g] for g in ids if g in names]

    def addresses(self: Network, server_id: str) -> dict[str, list[dict[str, Any]]]:
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

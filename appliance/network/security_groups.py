"""Security groups, stored only (enforcement with nftables is a later step): each project has a
`default` group, made on first use with Neutron's default rules."""

from __future__ import annotations

import ipaddress
import json
import uuid
from typing import Any

from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound
from appliance.network.service import Network, Row, _text, err, stamp


class SecurityGroups:
    def __init__(self, network: Network) -> None:
        self.net = network
        self.db = network.db
        network.resolve_groups = self.resolve

    def resolve(self, project_id: str, wanted: Any) -> list[str]:
        """The ids of a port's groups, given by id or name; None means the project's default group."""
        self.ensure_default(project_id)
        if wanted is None:
            wanted = ["default"]
        if not isinstance(wanted, list):
            raise Invalid("security_groups must be a list.")
        ids = []
        for ref in wanted:
            row = self.net._one(
                "SELECT id FROM security_groups WHERE project_id = ? AND (id = ? OR name = ?) "
                "ORDER BY name = 'default' DESC LIMIT 1", [project_id, str(ref), str(ref)],
            )  # fmt: skip
            if row is None:
                raise err(NotFound, "SecurityGroupNotFound", f"Security group {ref} does not exist")
            ids.append(row["id"])
        return ids

    def ensure_default(self, project_id: str) -> None:
        if self.net._one(
            "SELECT id FROM security_groups WHERE project_id = ? AND name = 'default'", [project_id]
        ):
            return
        group_id, now = str(uuid.uuid4()), stamp()
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO security_groups (id, name, description, project_id, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?)", [group_id, "default", "Default security group", project_id, now, now],
            )  # fmt: skip
            # neutron/db/securitygroups_db.py _ensure_default_security_group: egress anywhere, ingress
            # from members of the same group, for each ethertype.
            for direction, ethertype, remote in (("egress", "IPv4", None), ("egress", "IPv6", None),
                                                  ("ingress", "IPv4", group_id), ("ingress", "IPv6", group_id)):  # fmt: skip
                self._insert_rule(group_id, project_id, {"direction": direction, "ethertype": ethertype,
                                                         "remote_group_id": remote})  # fmt: skip

    def _insert_rule(self, group_id: str, project_id: str, spec: dict[str, Any]) -> str:
        rule_id, now = str(uuid.uuid4()), stamp()
        self.db.execute(
            "INSERT INTO security_group_rules (id, security_group_id, project_id, direction, ethertype, protocol, "
            "port_range_min, port_range_max, remote_ip_prefix, remote_group_id, description, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [rule_id, group_id, project_id, spec.get("direction", "ingress"), spec.get("ethertype", "IPv4"),
             spec.get("protocol"), spec.get("port_range_min"), spec.get("port_range_max"),
             spec.get("remote_ip_prefix"), spec.get("remote_group_id"), spec.get("description") or "", now, now],
        )  # fmt: skip
        return rule_id

    def rules(self, group_id: str) -> list[Row]:
        return self.net._rows(
            "SELECT * FROM security_group_rules WHERE security_group_id = ? ORDER BY created_at, id",
            [group_id],
        )

    def list_groups(self, ctx: Context) -> list[Row]:
        if ctx.project_id:
            self.ensure_default(ctx.project_id)
        if ctx.is_admin:
            return self.net._rows("SELECT * FROM security_groups ORDER BY created_at, id")
        return self.net._rows(
            "SELECT * FROM security_groups WHERE project_id = ? ORDER BY created_at, id",
            [ctx.project_id or ""],
        )

    def get_group(self, ctx: Context, group_id: str) -> Row:
        if ctx.project_id:
            self.ensure_default(ctx.project_id)
        row = self.net._one("SELECT * FROM security_groups WHERE id = ?", [group_id])
        if row is None or not (ctx.is_admin or row["project_id"] == ctx.project_id):
            raise err(
                NotFound, "SecurityGroupNotFound", f"Security group {group_id} does not exist"
            )
        return row

    def create_group(self, ctx: Context, spec: dict[str, Any]) -> Row:
        project = self.net._owner(ctx, spec)
        self.ensure_default(project)
        name = _text(spec, "name")
        if name == "default":
            raise err(
                Conflict,
                "SecurityGroupDefaultAlreadyExists",
                "Default security group already exists.",
            )
        self.net._quota(project, "security_group", "security_groups")
        group_id, now = str(uuid.uuid4()), stamp()
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO security_groups (id, name, description, project_id, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?)", [group_id, name, _text(spec, "description"), project, now, now],
            )  # fmt: skip
            for ethertype in ("IPv4", "IPv6"):
                self._insert_rule(
                    group_id, project, {"direction": "egress", "ethertype": ethertype}
                )
        return self.get_group(ctx, group_id)

    def delete_group(self, ctx: Context, group_id: str) -> None:
        row = self.get_group(ctx, group_id)
        if not ctx.can_write:
            raise Forbidden("Policy doesn't allow this operation: the member role is required.")
        if row["name"] == "default" and not ctx.is_admin:
            raise err(
                Conflict,
                "SecurityGroupCannotRemoveDefault",
                "Removing default security group not allowed.",
            )
        in_use = [p["id"] for p in self.net._rows("SELECT id, security_groups FROM ports")
                  if group_id in json.loads(p["security_groups"])]  # fmt: skip
        if in_use:
            raise err(Conflict, "SecurityGroupInUse", f"Security Group {group_id} in use.")
        with self.db.atomic():
            self.db.execute("DELETE FROM security_groups WHERE id = ?", [group_id])

    # -- rules ---------------------------------------------------------------------------------

    def create_rule(self, ctx: Context, spec: dict[str, Any]) -> Row:
        group = self.get_group(ctx, str(spec.get("security_group_id") or ""))
        if not ctx.can_write:
            raise Forbidden("Policy doesn't allow this operation: the member role is required.")
        direction = spec.get("direction")
        ethertype = spec.get("ethertype") or "IPv4"
        if direction not in ("ingress", "egress") or ethertype not in ("IPv4", "IPv6"):
            raise Invalid("direction must be ingress or egress and ethertype IPv4 or IPv6.")
        protocol = spec.get("protocol")
        protocol = PROTOCOL_NAMES.get(str(protocol), protocol) if protocol is not None else None
        if protocol not in (None, "tcp", "udp", "icmp"):
            raise err(Invalid, "SecurityGroupRuleInvalidProtocol",
                      f"Security group rule protocol {protocol} not supported: tcp, udp, icmp or any.")  # fmt: skip
        low, high = spec.get("port_range_min"), spec.get("port_range_max")
        if (low is not None or high is not None) and protocol not in ("tcp", "udp", "icmp"):
            raise Invalid("Port ranges need protocol tcp, udp or icmp.")
        if protocol in ("tcp", "udp") and low is not None:
            high = low if high is None else high
            if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high <= 65535):
                raise err(Invalid, "SecurityGroupInvalidPortRange", "Invalid port range.")
        prefix = spec.get("remote_ip_prefix")
        if prefix is not None:
            try:
                network = ipaddress.ip_network(str(prefix), strict=False)
            except ValueError:
                raise Invalid(f"Invalid remote_ip_prefix {prefix}.") from None
            prefix = str(network)
        remote_group = spec.get("remote_group_id")
        if remote_group is not None:
            self.get_group(ctx, str(remote_group))
        if prefix is not None and remote_group is not None:
            raise Invalid("Only one of remote_ip_prefix and remote_group_id may be given.")
        for existing in self.rules(group["id"]):
            if (existing["direction"], existing["ethertype"], existing["protocol"], existing["port_range_min"],
                    existing["port_range_max"], existing["remote_ip_prefix"], existing["remote_group_id"]) == (
                    direction, ethertype, protocol, low, high, prefix, remote_group):  # fmt: skip
                raise err(
                    Conflict,
                    "SecurityGroupRuleExists",
                    f"Security group rule already exists. Rule id is {existing['id']}.",
                )
        with self.db.atomic():
            rule_id = self._insert_rule(group["id"], group["project_id"], {
                "direction": direction, "ethertype": ethertype, "protocol": protocol, "port_range_min": low,
                "port_range_max": high, "remote_ip_prefix": prefix, "remote_group_id": remote_group,
                "description": spec.get("description") or ""})  # fmt: skip
        self.net.kick()
        return self.get_rule(ctx, rule_id)

    def get_rule(self, ctx: Context, rule_id: str) -> Row:
        row = self.net._one("SELECT * FROM security_group_rules WHERE id = ?", [rule_id])
        if row is None or not (ctx.is_admin or row["project_id"] == ctx.project_id):
            raise err(
                NotFound,
                "SecurityGroupRuleNotFound",
                f"Security group rule {rule_id} does not exist",
            )
        return row

    def delete_rule(self, ctx: Context, rule_id: str) -> None:
        self.get_rule(ctx, rule_id)
        if not ctx.can_write:
            raise Forbidden("Policy doesn't allow this operation: the member role is required.")
        with self.db.atomic():
            self.db.execute("DELETE FROM security_group_rules WHERE id = ?", [rule_id])
        self.net.kick()


# Neutron accepts IANA numbers for the common protocols.
PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp"}

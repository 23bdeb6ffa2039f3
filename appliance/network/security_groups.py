"""Security groups, stored only (enforcement with nftables is a later step): each project has a
`default` group, made on first use with Neutron's default rules."""

from __future__ import annotations

import uuid
from typing import Any

from appliance.context import Context
from appliance.errors import Conflict, Forbidden, NotFound
from appliance.network.service import Network, Row, _text, err, stamp


class SecurityGroups:
    def __init__(self, network: Network) -> None:
        self.net = network
        self.db = network.db

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
        with self.db.atomic():
            self.db.execute("DELETE FROM security_groups WHERE id = ?", [group_id])

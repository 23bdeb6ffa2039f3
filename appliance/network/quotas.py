"""Neutron's quotas API over Keystone unified limits (the limits are the truth; this only reads and
writes them): GET/PUT /v2.0/quotas/{project_id} and GET .../details."""

from __future__ import annotations

from typing import Any

from appliance.context import Context
from appliance.errors import Forbidden, Invalid, NotFound
from appliance.identity.limits import Limits
from appliance.network.service import DEFAULT_LIMITS, SERVICE_TYPE, Network

# resource -> (table, extra condition) counted as "used"
USAGE = {
    "network": ("networks", ""),
    "subnet": ("subnets", ""),
    "port": ("ports", " AND device_owner NOT LIKE 'network:%'"),
    "security_group": ("security_groups", ""),
    "router": ("routers", ""),
    "floatingip": ("floatingips", ""),
}


class NetworkQuotas:
    def __init__(self, network: Network, limits: Limits) -> None:
        self.net = network
        self.limits = limits

    def _check(self, ctx: Context, project_id: str) -> None:
        if not (ctx.is_admin or ctx.project_id == project_id):
            raise Forbidden("Only an admin may see another project's quotas.")

    def show(self, ctx: Context, project_id: str) -> dict[str, int]:
        self._check(ctx, project_id)
        return {name: self.net.limit(project_id, name) for name in DEFAULT_LIMITS}

    def details(self, ctx: Context, project_id: str) -> dict[str, dict[str, int]]:
        limits = self.show(ctx, project_id)
        result = {}
        for name, limit in limits.items():
            table, extra = USAGE[name]
            used = self.net.db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE project_id = ?{extra}", [project_id]
            ).fetchone()[0]
            result[name] = {"limit": limit, "used": int(used), "reserved": 0}
        return result

    def update(self, ctx: Context, project_id: str, changes: dict[str, Any]) -> dict[str, int]:
        if not ctx.is_admin:
            raise Forbidden("Only an admin may change quotas.")
        if not self.limits.identity.project_exists(project_id):
            raise NotFound(f"Project {project_id} could not be found.")
        service_id = self.limits._service_id(SERVICE_TYPE)
        for key, value in changes.items():
            if key in (
                "check_limit",
                "force",
            ):  # quota-check-limit: limits here never undercut usage checks
                continue
            if key not in DEFAULT_LIMITS:
                raise Invalid(f"Unrecognized attribute(s) '{key}'")
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise Invalid(f"Quota limit {value} for {key} must be an integer of -1 or more.")
            self.limits.set_project_limit(ctx, project_id, service_id, key, value)
        return self.show(ctx, project_id)

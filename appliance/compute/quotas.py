"""Compute quotas as Nova's os-quota-sets shows them, stored as Keystone unified limits (service
`compute`, Nova's unified-limit resource names), and usage counted from the servers table."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.context import Context
from appliance.errors import Forbidden, Invalid, NotFound
from appliance.identity.limits import Limits

# os-quota-sets key -> unified limit resource name (nova/limit/local.py, nova/limit/placement.py)
RESOURCES = {
    "instances": "servers",
    "cores": "class:VCPU",
    "ram": "class:MEMORY_MB",
    "key_pairs": "server_key_pairs",
    "metadata_items": "server_metadata_items",
    "injected_files": "server_injected_files",
    "injected_file_content_bytes": "server_injected_file_content_bytes",
    "injected_file_path_bytes": "server_injected_file_path_bytes",
    "server_groups": "server_groups",
    "server_group_members": "server_group_members",
}
DEFAULT_LIMITS = {
    "servers": 10,
    "class:VCPU": 20,
    "class:MEMORY_MB": 51200,
    "server_key_pairs": 100,
    "server_metadata_items": 128,
    "server_injected_files": 5,
    "server_injected_file_content_bytes": 10240,
    "server_injected_file_path_bytes": 255,
    "server_groups": 10,
    "server_group_members": 10,
}


class Quotas:
    def __init__(self, db: Database, limits: Limits) -> None:
        self.db = db
        self.limits = limits

    def limit(self, project_id: str, resource: str) -> int:
        return self.limits.limit(project_id, "compute", resource)

    def usage(self, project_id: str) -> dict[str, int]:
        row = self.db.execute(
            "SELECT count(*), coalesce(sum(json_extract(flavor, '$.vcpus')), 0), "
            "coalesce(sum(json_extract(flavor, '$.ram')), 0) FROM servers "
            "WHERE project_id = ? AND vm_state != 'deleted'",
            [project_id],
        ).fetchone()
        return {"instances": row[0], "cores": row[1], "ram": row[2]}

    def check_servers(self, project_id: str, count: int, vcpus: int, ram: int) -> str | None:
        """None if `count` more servers of this size fit, else Nova's over-quota message."""
        used = self.usage(project_id)
        wanted = {"instances": count, "cores": count * vcpus, "ram": count * ram}
        over = [
            k for k, v in wanted.items() if 0 <= self.limit(project_id, RESOURCES[k]) < used[k] + v
        ]
        if over:
            names = ", ".join(over)
            return f"Quota exceeded for {names}: Requested {', '.join(str(wanted[k]) for k in over)}, but already used {', '.join(str(used[k]) for k in over)} of {', '.join(str(self.limit(project_id, RESOURCES[k])) for k in over)} {names}"
        return None

    def quota_set(self, ctx: Context, project_id: str) -> dict[str, int]:
        if project_id != ctx.project_id and not ctx.is_admin:
            raise Forbidden(
                "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed."
            )
        return {key: self.limit(project_id, name) for key, name in RESOURCES.items()}

    def defaults(self) -> dict[str, int]:
        rows = self.limits.list_registered(None, {"service_id": self.limits._service_id("compute")})  # type: ignore[arg-type]
        by_name = {r["resource_name"]: r["default_limit"] for r in rows}
        return {key: by_name.get(name, DEFAULT_LIMITS[name]) for key, name in RESOURCES.items()}

    def update(self, ctx: Context, project_id: str, changes: dict[str, Any]) -> dict[str, int]:
        if not ctx.is_admin:
            raise Forbidden(
                "Policy doesn't allow os_compute_api:os-quota-sets:update to be performed."
            )
        if not self.limits.identity.project_exists(project_id):
            raise NotFound(f"Project {project_id} could not be found.")
        service_id = self.limits._service_id("compute")
        for key, value in changes.items():
            if key == "force":
                continue
            if key not in RESOURCES:
                raise Invalid(f"Bad key(s) {key} in quota_set")
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise Invalid(f"Quota limit {value} for {key} must be an integer of -1 or more.")
            self.limits.set_project_limit(ctx, project_id, service_id, RESOURCES[key], value)
        return self.quota_set(ctx, project_id)

    def reset(self, ctx: Context, project_id: str) -> None:
        if not ctx.is_admin:
            raise Forbidden(
                "Policy doesn't allow os_compute_api:os-quota-sets:delete to be performed."
            )
        service_id = self.limits._service_id("compute")
        for row in self.limits.list_limits(
            ctx, {"project_id": project_id, "service_id": service_id}
        ):
            self.limits.delete_limit(ctx, row["id"])

"""Keystone unified limits (flat model): a registered (default) limit per service resource, and
optional per-project limits. Services ask `limit(project, service_type, resource)`; -1 is unlimited."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound
from appliance.identity.catalog import Catalog
from appliance.identity.models import new_id
from appliance.identity.service import Identity, require_admin


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise Invalid(f"{what} must be an integer of -1 or more.")
    return value


class Limits:
    def __init__(self, identity: Identity, catalog: Catalog) -> None:
        self.identity = identity
        self.catalog = catalog
        self.db = identity.db

    def ensure_defaults(self, service_type: str, defaults: Mapping[str, int]) -> None:
        """Register a service's default limits unless an admin already has (start-up, idempotent)."""
        service_id = self._service_id(service_type)
        with self.db.atomic():
            for resource_name, value in defaults.items():
                self.db.execute(
                    "INSERT OR IGNORE INTO registered_limits (id, service_id, region_id, resource_name, "
                    "default_limit) VALUES (?,?,NULL,?,?)",
                    [new_id(), service_id, resource_name, value],
                )

    def _service_id(self, service_type: str) -> str:
        for service in self.catalog.services:
            if service.type == service_type:
                return service.id
        raise NotFound(f"No service of type {service_type} is served here.")

    def limit(self, project_id: str, service_type: str, resource_name: str) -> int:
        service_id = self._service_id(service_type)
        row = self.identity._one(  # the project's own limit, else the registered default
            "SELECT coalesce((SELECT resource_limit FROM limits WHERE project_id = ? "
            "AND service_id = ? AND resource_name = ?), (SELECT default_limit FROM "
            "registered_limits WHERE service_id = ? AND resource_name = ?)) AS v",
            [project_id, service_id, resource_name, service_id, resource_name],
        )
        return -1 if row is None or row["v"] is None else int(row["v"])

    # -- registered limits -----------------------------------------------------------------------

    def list_registered(self, ctx: Context, filters: dict[str, str]) -> list[dict[str, Any]]:
        return self._list(
            "registered_limits", filters, ("service_id", "region_id", "resource_name")
        )

    def get_registered(self, ctx: Context, limit_id: str) -> dict[str, Any]:
        return self._get("registered_limits", limit_id)

    def create_registered(self, ctx: Context, specs: Any) -> list[dict[str, Any]]:
        require_admin(ctx)
        if not isinstance(specs, list) or not specs:
            raise Invalid("registered_limits must be a non-empty list.")
        ids = []
        try:
            with self.db.atomic():
                for spec in specs:
                    ids.append(new_id())
                    self.db.execute(
                        "INSERT INTO registered_limits (id, service_id, region_id, resource_name, "
                        "default_limit, description) VALUES (?,?,?,?,?,?)",
                        [
                            ids[-1],
                            self._known_service(spec.get("service_id")),
                            spec.get("region_id"),
                            self._resource(spec),
                            _int(spec.get("default_limit"), "default_limit"),
                            spec.get("description") or "",
                        ],
                    )
        except sqlite3.IntegrityError:
            raise Conflict(
                "A registered limit for that service and resource already exists."
            ) from None
        return [self._get("registered_limits", i) for i in ids]

    def update_registered(
        self, ctx: Context, limit_id: str, spec: dict[str, Any]
    ) -> dict[str, Any]:
        require_admin(ctx)
        self._get("registered_limits", limit_id)
        changes: dict[str, Any] = {}
        if "default_limit" in spec:
            changes["default_limit"] = _int(spec["default_limit"], "default_limit")
        if "description" in spec:
            changes["description"] = spec["description"] or ""
        if changes:
            self._update("registered_limits", limit_id, changes)
        return self._get("registered_limits", limit_id)

    def delete_registered(self, ctx: Context, limit_id: str) -> None:
        require_admin(ctx)
        self._delete("registered_limits", limit_id)

    # -- project limits --------------------------------------------------------------------------

    def list_limits(self, ctx: Context, filters: dict[str, str]) -> list[dict[str, Any]]:
        if not (ctx.is_admin or (ctx.system and ctx.can_read)):
            filters = {**filters, "project_id": ctx.project_id or ""}
        return self._list(
            "limits", filters, ("service_id", "region_id", "resource_name", "project_id")
        )

    def get_limit(self, ctx: Context, limit_id: str) -> dict[str, Any]:
        row = self._get("limits", limit_id)
        if (
            not (ctx.is_admin or (ctx.system and ctx.can_read))
            and row["project_id"] != ctx.project_id
        ):
            raise Forbidden("You can only see the limits of your own project.")
        return row

    def create_limits(self, ctx: Context, specs: Any) -> list[dict[str, Any]]:
        require_admin(ctx)
        if not isinstance(specs, list) or not specs:
            raise Invalid("limits must be a non-empty list.")
        ids = []
        try:
            with self.db.atomic():
                for spec in specs:
                    project_id = spec.get("project_id")
                    self.identity.project(project_id or "")
                    ids.append(new_id())
                    self.db.execute(
                        "INSERT INTO limits (id, project_id, service_id, region_id, resource_name, "
                        "resource_limit, description) VALUES (?,?,?,?,?,?,?)",
                        [
                            ids[-1],
                            project_id,
                            self._known_service(spec.get("service_id")),
                            spec.get("region_id"),
                            self._resource(spec),
                            _int(spec.get("resource_limit"), "resource_limit"),
                            spec.get("description") or "",
                        ],
                    )
        except sqlite3.IntegrityError:
            raise Conflict(
                "A limit for that project, service and resource already exists."
            ) from None
        return [self._get("limits", i) for i in ids]

    def set_project_limit(
        self, ctx: Context, project_id: str, service_id: str, resource_name: str, value: int
    ) -> None:
        """Create or update one project's limit (what the services' quota-set APIs write)."""
        found = self.list_limits(
            ctx,
            {"project_id": project_id, "service_id": service_id, "resource_name": resource_name},
        )
        if found:
            self.update_limit(ctx, found[0]["id"], {"resource_limit": value})
        else:
            spec = {"project_id": project_id, "service_id": service_id,
                    "resource_name": resource_name, "resource_limit": value}  # fmt: skip
            self.create_limits(ctx, [spec])

    def update_limit(self, ctx: Context, limit_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        require_admin(ctx)
        self._get("limits", limit_id)
        changes: dict[str, Any] = {}
        if "resource_limit" in spec:
            changes["resource_limit"] = _int(spec["resource_limit"], "resource_limit")
        if "description" in spec:
            changes["description"] = spec["description"] or ""
        if changes:
            self._update("limits", limit_id, changes)
        return self._get("limits", limit_id)

    def delete_limit(self, ctx: Context, limit_id: str) -> None:
        require_admin(ctx)
        self._delete("limits", limit_id)

    # -- helpers ---------------------------------------------------------------------------------

    def _known_service(self, service_id: Any) -> str:
        if not isinstance(service_id, str) or self.catalog.service(service_id) is None:
            raise Invalid(f"Unknown service_id {service_id!r}.")
        return service_id

    @staticmethod
    def _resource(spec: dict[str, Any]) -> str:
        name = spec.get("resource_name")
        if not isinstance(name, str) or not name or len(name) > 255:
            raise Invalid("resource_name must be a non-empty string.")
        return name

    def _list(
        self, table: str, filters: dict[str, str], keys: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        where = [f"{k} = ?" for k in keys if k in filters]
        params = [filters[k] for k in keys if k in filters]
        sql = f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")
        return self.identity._all(sql + " ORDER BY resource_name", params)

    def _get(self, table: str, limit_id: str) -> dict[str, Any]:
        row = self.identity._one(f"SELECT * FROM {table} WHERE id = ?", [limit_id])
        if row is None:
            raise NotFound(f"Could not find limit: {limit_id}.")
        return row

    def _update(self, table: str, limit_id: str, changes: dict[str, Any]) -> None:
        with self.db.atomic():
            self.identity._update(table, limit_id, changes)

    def _delete(self, table: str, limit_id: str) -> None:
        self._get(table, limit_id)
        with self.db.atomic():
            self.db.execute(f"DELETE FROM {table} WHERE id = ?", [limit_id])

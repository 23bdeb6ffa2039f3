"""Flavors: the seeded ladder plus admin-made ones, private flavors with project access lists, and
extra specs (Nova's os-flavor-access and os-extra_specs)."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from typing import Any

from sqlite_utils import Database

from appliance.compute.models import Flavor
from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound

_SPEC_KEY = re.compile(r"^[\w.:-]{1,255}$")


def require_admin(ctx: Context) -> None:
    if not ctx.is_admin:
        raise Forbidden("Policy doesn't allow this operation to be performed: admin required.")


def _int(spec: dict[str, Any], key: str, minimum: int, default: int | None = None) -> int:
    value = spec.get(key, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise Invalid(
            f"Invalid input for field/attribute {key}. Value: {spec.get(key)}. It must be an integer >= {minimum}."
        )
    return value


class Flavors:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def _access(self, flavor_id: str) -> list[str]:
        return [
            r["project_id"]
            for r in self._rows(
                "SELECT project_id FROM flavor_access WHERE flavor_id = ?", [flavor_id]
            )
        ]

    def visible(self, ctx: Context, flavor: Flavor) -> bool:
        return flavor.is_public or ctx.is_admin or (ctx.project_id in self._access(flavor.id))

    def get(self, ctx: Context, flavor_id: str) -> Flavor:
        rows = self._rows("SELECT * FROM flavors WHERE id = ?", [flavor_id])
        if not rows or not self.visible(ctx, flavor := Flavor.from_row(rows[0])):
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        return flavor

    def list_flavors(
        self, ctx: Context, is_public: str | None, min_ram: int = 0, min_disk: int = 0
    ) -> list[Flavor]:
        flavors = [Flavor.from_row(r) for r in self._rows("SELECT * FROM flavors", [])]
        wanted = (is_public or "true").lower()
        result = []
        for f in flavors:
            if wanted in ("true", "t", "1", "yes") and not f.is_public:
                continue
            if wanted in ("false", "f", "0", "no") and (
                f.is_public or (not ctx.is_admin and not self.visible(ctx, f))
            ):
                continue
            if wanted in ("none",) and not self.visible(ctx, f):
                continue
            if f.ram < min_ram or f.disk < min_disk:
                continue
            result.append(f)
        # Nova's default order: flavorid ascending, as strings sort in its DB.
        return sorted(result, key=lambda f: f.id)

    def create(self, ctx: Context, spec: dict[str, Any]) -> Flavor:
        require_admin(ctx)
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise Invalid(
                "Invalid input for field/attribute name: a non-empty string of at most 255 characters."
            )
        flavor_id = spec.get("id")
        if flavor_id is None or flavor_id == "auto":
            flavor_id = str(uuid.uuid4())
        if not isinstance(flavor_id, str) or not re.match(r"^[\w.\- ]{1,255}$", flavor_id):
            raise Invalid("Invalid flavor id.")
        swap = spec.get("swap", 0)
        if swap == "":
            swap = 0
        values = [
            flavor_id, name, _int(spec, "vcpus", 1), _int(spec, "ram", 1), _int(spec, "disk", 0),
            _int(spec, "OS-FLV-EXT-DATA:ephemeral", 0, 0), _int({"swap": swap}, "swap", 0),
            float(spec.get("rxtx_factor", 1.0)), int(bool(spec.get("os-flavor-access:is_public", True))),
            spec.get("description"),
        ]  # fmt: skip
        try:
            with self.db.atomic():
                self.db.execute(
                    "INSERT INTO flavors (id, name, vcpus, ram, disk, ephemeral, swap, rxtx_factor, is_public, "
                    "description, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
                    values,
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"Flavor with name {name} or ID {flavor_id} already exists.") from None
        return self.get(ctx, flavor_id)

    def update(self, ctx: Context, flavor_id: str, spec: dict[str, Any]) -> Flavor:
        require_admin(ctx)
        self.get(ctx, flavor_id)
        if set(spec) != {"description"}:
            raise Invalid("Only the description of a flavor can be updated.")
        with self.db.atomic():
            self.db.execute(
                "UPDATE flavors SET description = ? WHERE id = ?", [spec["description"], flavor_id]
            )
        return self.get(ctx, flavor_id)

    def delete(self, ctx: Context, flavor_id: str) -> None:
        require_admin(ctx)
        self.get(ctx, flavor_id)
        with self.db.atomic():
            self.db.execute("DELETE FROM flavors WHERE id = ?", [flavor_id])

    # -- access --------------------------------------------------------------------------------

    def access(self, ctx: Context, flavor_id: str) -> list[str]:
        require_admin(ctx)
        flavor = self.get(ctx, flavor_id)
        if flavor.is_public:
            raise NotFound("Access list not available for public flavors.")
        return self._access(flavor_id)

    def add_access(self, ctx: Context, flavor_id: str, project_id: Any) -> list[str]:
        require_admin(ctx)
        flavor = self.get(ctx, flavor_id)
        if flavor.is_public:
            raise Conflict("Can not add access to a public flavor.")
        if not isinstance(project_id, str) or not project_id:
            raise Invalid("tenant is required.")
        try:
            with self.db.atomic():
                self.db.execute(
                    "INSERT INTO flavor_access (flavor_id, project_id) VALUES (?,?)",
                    [flavor_id, project_id],
                )
        except sqlite3.IntegrityError:
            raise Conflict(
                f"Flavor access already exists for flavor {flavor_id} and project {project_id} combination."
            ) from None
        return self._access(flavor_id)

    def remove_access(self, ctx: Context, flavor_id: str, project_id: Any) -> list[str]:
        require_admin(ctx)
        self.get(ctx, flavor_id)
        if project_id not in self._access(flavor_id):
            raise NotFound(f"Flavor access not found for {flavor_id} / {project_id} combination.")
        with self.db.atomic():
            self.db.execute(
                "DELETE FROM flavor_access WHERE flavor_id = ? AND project_id = ?",
                [flavor_id, project_id],
            )
        return self._access(flavor_id)

    # -- extra specs ---------------------------------------------------------------------------

    def set_extra_specs(self, ctx: Context, flavor_id: str, specs: Any) -> dict[str, str]:
        require_admin(ctx)
        flavor = self.get(ctx, flavor_id)
        if not isinstance(specs, dict) or not specs:
            raise Invalid("extra_specs must be a non-empty object.")
        for key, value in specs.items():
            if not _SPEC_KEY.match(key):
                raise Invalid(f"Invalid extra spec key {key!r}.")
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise Invalid(f"Extra spec {key} must be a string.")
        merged = {**flavor.extra_specs, **{k: str(v) for k, v in specs.items()}}
        with self.db.atomic():
            self.db.execute(
                "UPDATE flavors SET extra_specs = ? WHERE id = ?", [json.dumps(merged), flavor_id]
            )
        return merged

    def delete_extra_spec(self, ctx: Context, flavor_id: str, key: str) -> None:
        require_admin(ctx)
        flavor = self.get(ctx, flavor_id)
        if key not in flavor.extra_specs:
            raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
        specs = {k: v for k, v in flavor.extra_specs.items() if k != key}
        with self.db.atomic():
            self.db.execute(
                "UPDATE flavors SET extra_specs = ? WHERE id = ?", [json.dumps(specs), flavor_id]
            )

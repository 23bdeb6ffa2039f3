"""Identity state and policy: domains, projects, users, roles and role assignments.

Policy follows Keystone's defaults: the admin role (any scope) is cloud admin; a system-scoped reader
reads everything; everyone else sees only their own user and the projects they hold a role on.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from sqlite_utils import Database

from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from appliance.identity.models import (
    DEFAULT_DOMAIN_ID,
    IMPLIED_ROLES,
    Domain,
    Project,
    Role,
    User,
    iso,
    new_id,
    now,
)
from appliance.identity.passwords import Passwords

# Called after a change that must end a user's existing tokens (password change, disable).
RevokeUser = Callable[[str], None]

_USER_FIELDS = {"name", "domain_id", "enabled", "password", "default_project_id", "id", "options"}
# Every role some other role implies (fetched beside the assigned ones by roles_on).
IMPLIABLE = tuple(sorted({n for names in IMPLIED_ROLES.values() for n in names}))


def require_admin(ctx: Context) -> None:
    if not ctx.is_admin:
        raise Forbidden("You are not authorized to perform the requested action: admin required.")


def require_reader_of_all(ctx: Context) -> None:
    """Cloud admin, or a system-scoped reader (Keystone's SYSTEM_READER)."""
    if not (ctx.is_admin or (ctx.system and ctx.can_read)):
        raise Forbidden("You are not authorized to perform the requested action.")


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{what} name must be a non-empty string.")
    if len(value) > 255:
        raise Invalid(f"{what} name must be 255 characters or fewer.")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{what} must be a boolean.")
    return value


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid(f"{what} must be a string.")
    return value


class Identity:
    def __init__(self, db: Database, passwords: Passwords) -> None:
        self.db = db
        self.passwords = passwords
        self.on_user_revoked: list[RevokeUser] = []

    # -- lookups used by every other part of identity ------------------------------------------

    def _one(self, sql: str, params: Iterable[Any]) -> dict[str, Any] | None:
        cursor = self.db.execute(sql, list(params))
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cursor.description], row, strict=True))

    def _update(self, table: str, row_id: str, changes: dict[str, Any]) -> None:
        columns = ", ".join(f"{name} = ?" for name in changes)
        self.db.execute(f"UPDATE {table} SET {columns} WHERE id = ?", [*changes.values(), row_id])

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, list(params))
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def domain(self, domain_id: str) -> Domain:
        row = self._one("SELECT * FROM domains WHERE id = ?", [domain_id])
        if row is None:
            raise NotFound(f"Could not find domain: {domain_id}.")
        return Domain.from_row(row)

    def domain_by_name(self, name: str) -> Domain:
        row = self._one("SELECT * FROM domains WHERE name = ?", [name])
        if row is None:
            raise NotFound(f"Could not find domain: {name}.")
        return Domain.from_row(row)

    def project(self, project_id: str) -> Project:
        row = self._one("SELECT * FROM projects WHERE id = ?", [project_id])
        if row is None:
            raise NotFound(f"Could not find project: {project_id}.")
        return Project.from_row(row)

    def project_exists(self, project_id: str) -> bool:
        return self._one("SELECT 1 FROM projects WHERE id = ?", [project_id]) is not None

    def project_by_name(self, name: str, domain_id: str) -> Project:
        row = self._one(
            "SELECT * FROM projects WHERE name = ? AND domain_id = ?", [name, domain_id]
        )
        if row is None:
            raise NotFound(f"Could not find project: {name}.")
        return Project.from_row(row)

    def user(self, user_id: str) -> User:
        row = self._one("SELECT * FROM users WHERE id = ?", [user_id])
        if row is None:
            raise NotFound(f"Could not find user: {user_id}.")
        return User.from_row(row)

    def user_by_name(self, name: str, domain_id: str) -> User:
        row = self._one("SELECT * FROM users WHERE name = ? AND domain_id = ?", [name, domain_id])
        if row is None:
            raise NotFound(f"Could not find user: {name}.")
        return User.from_row(row)

    def password_hash(self, user_id: str) -> str | None:
        row = self._one("SELECT password_hash FROM users WHERE id = ?", [user_id])
        return None if row is None else row["password_hash"]

    def role(self, role_id: str) -> Role:
        row = self._one("SELECT * FROM roles WHERE id = ?", [role_id])
        if row is None:
            raise NotFound(f"Could not find role: {role_id}.")
        return Role.from_row(row)

    def role_by_name(self, name: str) -> Role:
        row = self._one("SELECT * FROM roles WHERE name = ?", [name])
        if row is None:
            raise NotFound(f"Could not find role: {name}.")
        return Role.from_row(row)

    def roles_on(self, user_id: str, target_type: str, target_id: str) -> tuple[Role, ...]:
        """The user's effective roles on a target: direct assignments plus the roles they imply.

        One query: the assigned roles, and beside them every role some role can imply."""
        marks = ", ".join("?" for _ in IMPLIABLE)
        rows = self._all(
            "SELECT r.id, r.name, r.description, a.role_id IS NOT NULL AS held FROM roles r "
            "LEFT JOIN role_assignments a ON a.role_id = r.id AND a.user_id = ? "
            "AND a.target_type = ? AND a.target_id = ? "
            f"WHERE a.role_id IS NOT NULL OR r.name IN ({marks})",
            [user_id, target_type, target_id, *IMPLIABLE],
        )
        by_name = {r["name"]: Role.from_row(r) for r in rows}
        found = {r["name"]: by_name[r["name"]] for r in rows if r["held"]}
        pending = list(found)
        while pending:
            for name in IMPLIED_ROLES.get(pending.pop(), ()):
                if name not in found and name in by_name:
                    found[name] = by_name[name]
                    pending.append(name)
        return tuple(sorted(found.values(), key=lambda r: r.name))

    # -- domains -------------------------------------------------------------------------------

    def create_domain_unchecked(self, domain_id: str, name: str, description: str = "") -> Domain:
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO domains (id, name, description, enabled, created_at) VALUES (?,?,?,1,?)",
                [domain_id, name, description, iso(now())],
            )
        return self.domain(domain_id)

    def list_domains(self, ctx: Context, name: str | None = None) -> list[Domain]:
        rows = self._all("SELECT * FROM domains ORDER BY name")
        return [Domain.from_row(r) for r in rows if name is None or r["name"] == name]

    def get_domain(self, ctx: Context, domain_id: str) -> Domain:
        return self.domain(domain_id)

    # -- projects ------------------------------------------------------------------------------

    def can_see_project(self, ctx: Context, project_id: str) -> bool:
        if ctx.is_admin or (ctx.system and ctx.can_read):
            return True
        return ctx.project_id == project_id

    def _listed(self, table: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        """Rows of projects or users matching Keystone's list filters name, domain_id, enabled."""
        where: list[str] = []
        params: list[Any] = []
        for key in ("name", "domain_id"):
            if key in filters:
                where.append(f"{key} = ?")
                params.append(filters[key])
        if "enabled" in filters:
            where.append("enabled = ?")
            params.append(0 if filters["enabled"].lower() in ("0", "false", "no") else 1)
        sql = f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")
        return self._all(sql + " ORDER BY name", params)

    def list_projects(self, ctx: Context, filters: dict[str, str]) -> list[Project]:
        require_reader_of_all(ctx)
        return [Project.from_row(r) for r in self._listed("projects", filters)]

    def get_project(self, ctx: Context, project_id: str) -> Project:
        project = self.project(project_id)
        if not self.can_see_project(ctx, project_id):
            raise Forbidden(f"You are not authorized to see project {project_id}.")
        return project

    def create_project(self, ctx: Context, spec: dict[str, Any]) -> Project:
        require_admin(ctx)
        name = _name(spec.get("name"), "Project")
        domain_id = spec.get("domain_id") or DEFAULT_DOMAIN_ID
        self.domain(domain_id)
        if spec.get("is_domain"):
            raise Invalid("Projects acting as domains are not supported.")
        if spec.get("parent_id") not in (None, domain_id):
            raise Invalid("Nested projects are not supported; parent_id must be the domain.")
        tags = spec.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise Invalid("tags must be a list of strings.")
        project_id = new_id()
        try:
            with self.db.atomic():
                self.db.execute(
                    "INSERT INTO projects (id, name, domain_id, description, enabled, tags, "
                    "created_at) VALUES (?,?,?,?,?,?,?)",
                    [
                        project_id,
                        name,
                        domain_id,
                        _text(spec.get("description"), "description"),
                        int(_bool(spec.get("enabled", True), "enabled")),
                        json.dumps(tags),
                        iso(now()),
                    ],
                )
        except sqlite3.IntegrityError:
            raise Conflict(
                f"Conflict occurred attempting to store project - it already exists: {name}."
            ) from None
        return self.project(project_id)

    def update_project(self, ctx: Context, project_id: str, spec: dict[str, Any]) -> Project:
        require_admin(ctx)
        project = self.project(project_id)
        changes: dict[str, Any] = {}
        if "name" in spec:
            changes["name"] = _name(spec["name"], "Project")
        if "description" in spec:
            changes["description"] = _text(spec["description"], "description")
        if "enabled" in spec:
            changes["enabled"] = int(_bool(spec["enabled"], "enabled"))
        if "tags" in spec:
            changes["tags"] = json.dumps(spec["tags"] or [])
        if "domain_id" in spec and spec["domain_id"] != project.domain_id:
            raise Invalid("A project cannot move to another domain.")
        if changes:
            try:
                with self.db.atomic():
                    self._update("projects", project_id, changes)
            except sqlite3.IntegrityError:
                raise Conflict(f"A project named {changes.get('name')} already exists.") from None
        return self.project(project_id)

    def delete_project(self, ctx: Context, project_id: str) -> None:
        require_admin(ctx)
        self.project(project_id)
        with self.db.atomic():
            self.db.execute(
                "DELETE FROM role_assignments WHERE target_type = 'project' AND target_id = ?",
                [project_id],
            )
            self.db.execute(
                "UPDATE users SET default_project_id = NULL WHERE default_project_id = ?",
                [project_id],
            )
            self.db.execute("DELETE FROM projects WHERE id = ?", [project_id])

    def projects_of_user(self, ctx: Context, user_id: str) -> list[Project]:
        """Enabled projects where the user holds any role (`/v3/auth/projects`, `/v3/users/{id}/projects`)."""
        if user_id != ctx.user_id:
            require_reader_of_all(ctx)
        rows = self._all(
            "SELECT DISTINCT p.* FROM projects p JOIN role_assignments a "
            "ON a.target_type = 'project' AND a.target_id = p.id "
            "WHERE a.user_id = ? AND p.enabled = 1 ORDER BY p.name",
            [user_id],
        )
        return [Project.from_row(r) for r in rows]

    # -- users ---------------------------------------------------------------------------------

    def list_users(self, ctx: Context, filters: dict[str, str]) -> list[User]:
        require_reader_of_all(ctx)
        return [User.from_row(r) for r in self._listed("users", filters)]

    def get_user(self, ctx: Context, user_id: str) -> User:
        if user_id != ctx.user_id:
            require_reader_of_all(ctx)
        return self.user(user_id)

    async def _hash_of(self, spec: dict[str, Any]) -> str | None:
        password = spec.get("password")
        if password is None:
            return None
        if not isinstance(password, str) or not password:
            raise Invalid("password must be a non-empty string.")
        return await self.passwords.hash(password)

    async def create_user(self, ctx: Context, spec: dict[str, Any]) -> User:
        require_admin(ctx)
        password_hash = await self._hash_of(spec)
        name = _name(spec.get("name"), "User")
        domain_id = spec.get("domain_id") or DEFAULT_DOMAIN_ID
        self.domain(domain_id)
        default_project = spec.get("default_project_id")
        if default_project is not None:
            self.project(default_project)
        extra = {k: v for k, v in spec.items() if k not in _USER_FIELDS}
        user_id = new_id()
        try:
            with self.db.atomic():
                self.db.execute(
                    "INSERT INTO users (id, name, domain_id, enabled, password_hash, "
                    "default_project_id, extra, created_at) VALUES (?,?,?,?,?,?,?,?)",
                    [
                        user_id,
                        name,
                        domain_id,
                        int(_bool(spec.get("enabled", True), "enabled")),
                        password_hash,
                        default_project,
                        json.dumps(extra),
                        iso(now()),
                    ],
                )
        except sqlite3.IntegrityError:
            raise Conflict(
                f"Conflict occurred attempting to store user - it already exists: {name}."
            ) from None
        return self.user(user_id)

    async def update_user(self, ctx: Context, user_id: str, spec: dict[str, Any]) -> User:
        require_admin(ctx)
        user = self.user(user_id)
        password_hash = await self._hash_of(spec)
        changes: dict[str, Any] = {}
        if "name" in spec:
            changes["name"] = _name(spec["name"], "User")
        if "enabled" in spec:
            changes["enabled"] = int(_bool(spec["enabled"], "enabled"))
        if "default_project_id" in spec:
            if spec["default_project_id"] is not None:
                self.project(spec["default_project_id"])
            changes["default_project_id"] = spec["default_project_id"]
        if password_hash is not None:
            changes["password_hash"] = password_hash
        extra = dict(user.extra)
        extra.update({k: v for k, v in spec.items() if k not in _USER_FIELDS})
        changes["extra"] = json.dumps(extra)
        try:
            with self.db.atomic():
                self._update("users", user_id, changes)
        except sqlite3.IntegrityError:
            raise Conflict(f"A user named {changes.get('name')} already exists.") from None
        if password_hash is not None or changes.get("enabled") == 0:
            self._revoke_user(user_id)
        return self.user(user_id)

    async def change_password(self, user_id: str, original: Any, new: Any) -> None:
        """A user changes their own password; proving the original one is the authorization."""
        if not isinstance(original, str) or not isinstance(new, str) or not new:
            raise Invalid("original_password and password must be non-empty strings.")
        user = self.user(user_id)
        if not user.enabled or not await self.passwords.verify(
            self.password_hash(user_id), original
        ):
            raise Unauthorized("The request you have made requires authentication.")
        password_hash = await self.passwords.hash(new)
        with self.db.atomic():
            self.db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", [password_hash, user_id]
            )
        self._revoke_user(user_id)

    def delete_user(self, ctx: Context, user_id: str) -> None:
        require_admin(ctx)
        self.user(user_id)
        if user_id == ctx.user_id:
            raise Forbidden("You cannot delete the user you are authenticated as.")
        with self.db.atomic():
            self.db.execute("DELETE FROM users WHERE id = ?", [user_id])
        self._revoke_user(user_id)

    def _revoke_user(self, user_id: str) -> None:
        for revoke in self.on_user_revoked:
            revoke(user_id)

    # -- roles ---------------------------------------------------------------------------------

    def create_role_unchecked(self, name: str) -> Role:
        role_id = new_id()
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO roles (id, name, description, created_at) VALUES (?,?,'',?)",
                [role_id, name, iso(now())],
            )
        return self.role(role_id)

    def list_roles(self, ctx: Context, name: str | None = None) -> list[Role]:
        require_reader_of_all(ctx)
        rows = self._all("SELECT * FROM roles ORDER BY name")
        return [Role.from_row(r) for r in rows if name is None or r["name"] == name]

    def get_role(self, ctx: Context, role_id: str) -> Role:
        require_reader_of_all(ctx)
        return self.role(role_id)

    def create_role(self, ctx: Context, spec: dict[str, Any]) -> Role:
        require_admin(ctx)
        name = _name(spec.get("name"), "Role")
        if spec.get("domain_id"):
            raise Invalid("Domain-specific roles are not supported.")
        try:
            role = self.create_role_unchecked(name)
        except sqlite3.IntegrityError:
            raise Conflict(
                f"Conflict occurred attempting to store role - it already exists: {name}."
            ) from None
        if spec.get("description"):
            with self.db.atomic():
                self._update(
                    "roles", role.id, {"description": _text(spec["description"], "description")}
                )
        return self.role(role.id)

    def update_role(self, ctx: Context, role_id: str, spec: dict[str, Any]) -> Role:
        require_admin(ctx)
        self.role(role_id)
        changes: dict[str, Any] = {}
        if "name" in spec:
            changes["name"] = _name(spec["name"], "Role")
        if "description" in spec:
            changes["description"] = _text(spec["description"], "description")
        if changes:
            try:
                with self.db.atomic():
                    self._update("roles", role_id, changes)
            except sqlite3.IntegrityError:
                raise Conflict(f"A role named {changes.get('name')} already exists.") from None
        return self.role(role_id)

    def delete_role(self, ctx: Context, role_id: str) -> None:
        require_admin(ctx)
        self.role(role_id)
        with self.db.atomic():
            self.db.execute("DELETE FROM roles WHERE id = ?", [role_id])

"""Role assignments: grant, check, revoke and list who holds which role where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.context import Context
from appliance.errors import Invalid, NotFound
from appliance.identity.models import IMPLIED_ROLES, Assignment, Domain, Role, User
from appliance.identity.service import Identity, require_admin, require_reader_of_all

TARGETS = ("project", "domain", "system")


@dataclass(frozen=True, slots=True)
class AssignmentFilter:
    user_id: str | None = None
    role_id: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    system: bool = False
    group_id: str | None = None
    effective: bool = False
    include_names: bool = False


class Assignments:
    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.db = identity.db

    def _target(self, target_type: str, target_id: str) -> None:
        if target_type == "project":
            self.identity.project(target_id)
        elif target_type == "domain":
            self.identity.domain(target_id)
        elif target_type != "system" or target_id != "all":
            raise Invalid(f"Unknown assignment target {target_type} {target_id}.")

    def grant(
        self, ctx: Context, user_id: str, target_type: str, target_id: str, role_id: str
    ) -> None:
        require_admin(ctx)
        self.identity.user(user_id)
        self.identity.role(role_id)
        self._target(target_type, target_id)
        with self.db.atomic():
            self.db.execute(
                "INSERT OR IGNORE INTO role_assignments (user_id, target_type, target_id, role_id) "
                "VALUES (?,?,?,?)",
                [user_id, target_type, target_id, role_id],
            )

    def check(
        self, ctx: Context, user_id: str, target_type: str, target_id: str, role_id: str
    ) -> None:
        require_reader_of_all(ctx)
        self._target(target_type, target_id)
        row = self.identity._one(
            "SELECT 1 FROM role_assignments WHERE user_id = ? AND target_type = ? AND target_id = ? "
            "AND role_id = ?",
            [user_id, target_type, target_id, role_id],
        )
        if row is None:
            raise NotFound(f"Could not find role assignment with role: {role_id}, user: {user_id}.")

    def revoke(
        self, ctx: Context, user_id: str, target_type: str, target_id: str, role_id: str
    ) -> None:
        require_admin(ctx)
        self.check(ctx, user_id, target_type, target_id, role_id)
        with self.db.atomic():
            self.db.execute(
                "DELETE FROM role_assignments WHERE user_id = ? AND target_type = ? "
                "AND target_id = ? AND role_id = ?",
                [user_id, target_type, target_id, role_id],
            )

    def roles_of(self, ctx: Context, user_id: str, target_type: str, target_id: str) -> list[Role]:
        """Roles directly granted to a user on a target (`GET /v3/projects/{p}/users/{u}/roles`)."""
        require_reader_of_all(ctx)
        self.identity.user(user_id)
        self._target(target_type, target_id)
        rows = self.identity._all(
            "SELECT r.* FROM role_assignments a JOIN roles r ON r.id = a.role_id "
            "WHERE a.user_id = ? AND a.target_type = ? AND a.target_id = ? ORDER BY r.name",
            [user_id, target_type, target_id],
        )
        return [Role.from_row(r) for r in rows]

    def list(self, ctx: Context, flt: AssignmentFilter) -> list[Assignment]:
        require_reader_of_all(ctx)
        if flt.group_id is not None:
            return []  # Nube has no groups, so no group holds a role
        where, params = [], []
        if flt.user_id:
            where.append("a.user_id = ?")
            params.append(flt.user_id)
        if flt.project_id:
            where.append("a.target_type = 'project' AND a.target_id = ?")
            params.append(flt.project_id)
        if flt.domain_id:
            where.append("a.target_type = 'domain' AND a.target_id = ?")
            params.append(flt.domain_id)
        if flt.system:
            where.append("a.target_type = 'system'")
        sql = (
            "SELECT a.*, u.name AS user_name FROM role_assignments a JOIN users u ON u.id = a.user_id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY u.name, a.target_type, a.target_id"
        )
        roles = {r["id"]: Role.from_row(r) for r in self.identity._all("SELECT * FROM roles")}
        by_name = {r.name: r for r in roles.values()}
        users: dict[str, User] = {}
        domains: dict[str, Domain] = {}
        result: list[Assignment] = []
        for row in self.identity._all(sql, params):
            user = users.get(row["user_id"]) or users.setdefault(
                row["user_id"], self.identity.user(row["user_id"])
            )
            role = roles[row["role_id"]]
            held: list[tuple[Role, Role | None]] = [(role, None)]
            if flt.effective:
                pending = [role]
                while pending:
                    for name in IMPLIED_ROLES.get(pending.pop().name, ()):
                        if name in by_name:
                            held.append((by_name[name], role))
                            pending.append(by_name[name])
            for held_role, implied_by in held:
                if flt.role_id and held_role.id != flt.role_id:
                    continue
                result.append(
                    self._describe(row, user, held_role, implied_by, flt.include_names, domains)
                )
        if flt.effective:
            seen: set[tuple[str, str, str, str]] = set()
            unique = []
            for a in result:
                key = (a.user.id, a.target_type, a.target_id, a.role.id)
                if key not in seen:
                    seen.add(key)
                    unique.append(a)
            result = unique
        return result

    def _describe(
        self,
        row: dict[str, Any],
        user: User,
        role: Role,
        implied_by: Role | None,
        names: bool,
        domains: dict[str, Domain],
    ) -> Assignment:
        def domain(domain_id: str) -> Domain:
            if domain_id not in domains:
                domains[domain_id] = self.identity.domain(domain_id)
            return domains[domain_id]

        target_name = target_domain = None
        if names and row["target_type"] == "project":
            project = self.identity.project(row["target_id"])
            target_name, target_domain = project.name, domain(project.domain_id)
        elif names and row["target_type"] == "domain":
            target_name = domain(row["target_id"]).name
        return Assignment(
            user=user,
            role=role,
            target_type=row["target_type"],
            target_id=row["target_id"],
            target_name=target_name,
            target_domain=target_domain,
            user_domain=domain(user.domain_id) if names else None,
            implied_by=implied_by,
        )

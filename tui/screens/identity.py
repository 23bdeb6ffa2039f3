"""Projects, users and roles, for admins (the app hides this section from members)."""

from __future__ import annotations

from typing import Any

from tui import resources
from tui.screens.base import Columns, ListScreen

PROJECTS: Columns = [
    ("name", "Name", lambda r: r.get("name")),
    ("enabled", "Enabled", lambda r: "yes" if r.get("enabled") else "no"),
    ("description", "Description", lambda r: r.get("description")),
]
USERS: Columns = [
    ("name", "Name", lambda r: r.get("name")),
    ("enabled", "Enabled", lambda r: "yes" if r.get("enabled") else "no"),
    ("project", "Default project", lambda r: str(r.get("default_project_id") or "")[:8]),
]
ROLES: Columns = [("name", "Name", lambda r: r.get("name"))]


class IdentityScreen(ListScreen):
    REFRESH_SECONDS = 15.0

    def tables(self) -> dict[str, Any]:
        return {
            "projects": ("Projects", PROJECTS, resources.projects),
            "users": ("Users", USERS, resources.users),
            "roles": ("Roles", ROLES, resources.roles),
        }

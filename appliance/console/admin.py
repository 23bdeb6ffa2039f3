"""Identity admin (admins only): projects, users, role assignments and each project's quotas.

Every page checks the admin role first (a member gets 403), and the service methods they call
check it again, as the APIs do."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.cloud import cloud
from appliance.console import session as sessions
from appliance.console.pages import NavItem, action, redirect, render, text
from appliance.console.session import Session
from appliance.errors import Forbidden, Invalid
from appliance.identity.assignments import AssignmentFilter

BACK = "/console/admin"
# (label, service, key) of the quotas the page edits; the services' own update methods apply them.
QUOTAS = (
    ("Instances", "compute", "instances"),
    ("vCPUs", "compute", "cores"),
    ("RAM (MiB)", "compute", "ram"),
    ("Volumes", "volume", "volumes"),
    ("Volume storage (GiB)", "volume", "gigabytes"),
    ("Networks", "network", "network"),
    ("Floating IPs", "network", "floatingip"),
)


def _admin(request: Request) -> Session:
    session = sessions.require(request)
    if not session.ctx.is_admin:
        raise Forbidden("Only an admin may manage identity and quotas.")
    return session


async def index(request: Request) -> Response:
    session = _admin(request)
    c = cloud(request)
    ctx = session.ctx
    projects = c.identity.list_projects(ctx, {})
    users = c.identity.list_users(ctx, {})
    roles = c.identity.list_roles(ctx)
    grants = c.assignments.list(ctx, AssignmentFilter(include_names=True))
    return render(request, session, "admin/index.html", projects=projects, users=users,
                  roles=roles, grants=grants)  # fmt: skip


async def quotas(request: Request) -> Response:
    session = _admin(request)
    c = cloud(request)
    ctx = session.ctx
    project = c.identity.get_project(ctx, request.path_params["project_id"])
    values = {
        "compute": c.quotas.quota_set(ctx, project.id),
        "volume": c.volumes.quota_set(ctx, project.id),
        "network": c.network_quotas.show(ctx, project.id),
    }
    rows = [(label, f"{service}.{key}", values[service][key]) for label, service, key in QUOTAS]
    return render(request, session, "admin/quotas.html", project=project, rows=rows)


@action(BACK)
async def set_quotas(request: Request, session: Session, form: FormData) -> Response:
    _admin(request)
    c = cloud(request)
    ctx = session.ctx
    project_id = request.path_params["project_id"]
    changes: dict[str, dict[str, Any]] = {"compute": {}, "volume": {}, "network": {}}
    for label, service, key in QUOTAS:
        raw = text(form, f"{service}.{key}")
        try:
            changes[service][key] = int(raw)
        except ValueError:
            raise Invalid(f"{label}: {raw!r} is not a whole number (-1 is unlimited).") from None
    c.quotas.update(ctx, project_id, changes["compute"])
    c.volumes.update_quota(ctx, project_id, changes["volume"])
    c.network_quotas.update(ctx, project_id, changes["network"])
    return redirect(f"{BACK}/projects/{project_id}/quotas", "ok", "Quotas saved.")


@action(BACK)
async def create_project(request: Request, session: Session, form: FormData) -> Response:
    project = cloud(request).identity.create_project(
        session.ctx, {"name": text(form, "name"), "description": text(form, "description")}
    )
    return redirect(BACK, "ok", f"Project {project.name} created.")


@action(BACK)
async def project_action(request: Request, session: Session, form: FormData) -> Response:
    identity = cloud(request).identity
    project_id = request.path_params["project_id"]
    name = text(form, "action")
    if name in ("enable", "disable"):
        identity.update_project(session.ctx, project_id, {"enabled": name == "enable"})
        return redirect(BACK, "ok", f"Project {name}d.")
    if name == "delete":
        if project_id == session.ctx.project_id:
            raise Invalid("Switch to another project before deleting this one.")
        identity.delete_project(session.ctx, project_id)
        return redirect(BACK, "ok", "Project deleted.")
    raise Invalid(f"There is no such action: {name}")


@action(BACK)
async def create_user(request: Request, session: Session, form: FormData) -> Response:
    c = cloud(request)
    ctx = session.ctx
    spec: dict[str, Any] = {"name": text(form, "name"), "password": str(form.get("password") or "")}
    project_id, role_id = text(form, "project_id"), text(form, "role_id")
    if project_id:
        spec["default_project_id"] = project_id
    user = await c.identity.create_user(ctx, spec)
    if project_id and role_id:
        c.assignments.grant(ctx, user.id, "project", project_id, role_id)
    return redirect(BACK, "ok", f"User {user.name} created.")


@action(BACK)
async def delete_user(request: Request, session: Session, form: FormData) -> Response:
    user_id = request.path_params["user_id"]
    if user_id == session.ctx.user_id:
        raise Invalid("You cannot delete yourself.")
    cloud(request).identity.delete_user(session.ctx, user_id)
    return redirect(BACK, "ok", "User deleted.")


@action(BACK)
async def grant(request: Request, session: Session, form: FormData) -> Response:
    cloud(request).assignments.grant(
        session.ctx,
        text(form, "user_id"),
        "project",
        text(form, "project_id"),
        text(form, "role_id"),
    )
    return redirect(BACK, "ok", "Role granted.")


@action(BACK)
async def revoke(request: Request, session: Session, form: FormData) -> Response:
    cloud(request).assignments.revoke(
        session.ctx,
        text(form, "user_id"),
        "project",
        text(form, "project_id"),
        text(form, "role_id"),
    )
    return redirect(BACK, "ok", "Role revoked.")


nav = [NavItem("Identity admin", BACK, admin_only=True)]
routes = [
    Route("/admin", index, methods=["GET"]),
    Route("/admin/projects", create_project, methods=["POST"]),
    Route("/admin/projects/{project_id}/action", project_action, methods=["POST"]),
    Route("/admin/projects/{project_id}/quotas", quotas, methods=["GET"]),
    Route("/admin/projects/{project_id}/quotas", set_quotas, methods=["POST"]),
    Route("/admin/users", create_user, methods=["POST"]),
    Route("/admin/users/{user_id}/delete", delete_user, methods=["POST"]),
    Route("/admin/grants", grant, methods=["POST"]),
    Route("/admin/grants/revoke", revoke, methods=["POST"]),
]

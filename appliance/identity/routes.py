"""Keystone v3 HTTP endpoints for projects, users, roles, domains, assignments and the catalog.
Token and credential endpoints are in auth_routes.py."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from appliance.cloud import cloud
from appliance.errors import NotFound
from appliance.identity import wire
from appliance.identity.assignments import TARGETS, AssignmentFilter
from appliance.identity.service import require_reader_of_all
from appliance.web.body import json_body, member
from appliance.web.middleware import caller


def identity_base(request: Request) -> str:
    return cloud(request).api_base(request) + "/identity"


def ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def no_content() -> Response:
    return Response(status_code=204)


def _listing(request: Request, name: str, items: list[dict[str, Any]]) -> JSONResponse:
    return ok(wire.collection(name, items, str(request.url)))


def _filters(request: Request, *keys: str) -> dict[str, str]:
    return {k: request.query_params[k] for k in keys if k in request.query_params}


# -- discovery ---------------------------------------------------------------------------------


async def versions(request: Request) -> Response:
    return JSONResponse(wire.versions_json(identity_base(request)), status_code=300)


async def version(request: Request) -> Response:
    return ok(wire.version_json(identity_base(request)))


# -- domains -----------------------------------------------------------------------------------


async def domains_index(request: Request) -> Response:
    ctx = caller(request)
    found = cloud(request).identity.list_domains(ctx, request.query_params.get("name"))
    base = identity_base(request)
    return _listing(request, "domains", [wire.domain_json(d, base) for d in found])


async def domains_show(request: Request) -> Response:
    domain = cloud(request).identity.get_domain(caller(request), request.path_params["domain_id"])
    return ok({"domain": wire.domain_json(domain, identity_base(request))})


# -- projects ----------------------------------------------------------------------------------


async def projects_index(request: Request) -> Response:
    found = cloud(request).identity.list_projects(
        caller(request), _filters(request, "name", "domain_id", "enabled")
    )
    base = identity_base(request)
    return _listing(request, "projects", [wire.project_json(p, base) for p in found])


async def projects_create(request: Request) -> Response:
    spec = member(await json_body(request), "project")
    project = cloud(request).identity.create_project(caller(request), spec)
    return ok({"project": wire.project_json(project, identity_base(request))}, 201)


async def projects_show(request: Request) -> Response:
    project = cloud(request).identity.get_project(
        caller(request), request.path_params["project_id"]
    )
    return ok({"project": wire.project_json(project, identity_base(request))})


async def projects_update(request: Request) -> Response:
    spec = member(await json_body(request), "project")
    project = cloud(request).identity.update_project(
        caller(request), request.path_params["project_id"], spec
    )
    return ok({"project": wire.project_json(project, identity_base(request))})


async def projects_delete(request: Request) -> Response:
    cloud(request).identity.delete_project(caller(request), request.path_params["project_id"])
    return no_content()


# -- users -------------------------------------------------------------------------------------


async def users_index(request: Request) -> Response:
    found = cloud(request).identity.list_users(
        caller(request), _filters(request, "name", "domain_id", "enabled")
    )
    base = identity_base(request)
    return _listing(request, "users", [wire.user_json(u, base) for u in found])


async def users_create(request: Request) -> Response:
    spec = member(await json_body(request), "user")
    user = await cloud(request).identity.create_user(caller(request), spec)
    return ok({"user": wire.user_json(user, identity_base(request))}, 201)


async def users_show(request: Request) -> Response:
    user = cloud(request).identity.get_user(caller(request), request.path_params["user_id"])
    return ok({"user": wire.user_json(user, identity_base(request))})


async def users_update(request: Request) -> Response:
    spec = member(await json_body(request), "user")
    user = await cloud(request).identity.update_user(
        caller(request), request.path_params["user_id"], spec
    )
    return ok({"user": wire.user_json(user, identity_base(request))})


async def users_delete(request: Request) -> Response:
    cloud(request).identity.delete_user(caller(request), request.path_params["user_id"])
    return no_content()


async def users_password(request: Request) -> Response:
    spec = member(await json_body(request), "user")
    await cloud(request).identity.change_password(
        request.path_params["user_id"], spec.get("original_password"), spec.get("password")
    )
    return no_content()


async def users_projects(request: Request) -> Response:
    found = cloud(request).identity.projects_of_user(
        caller(request), request.path_params["user_id"]
    )
    base = identity_base(request)
    return _listing(request, "projects", [wire.project_json(p, base) for p in found])


# -- roles -------------------------------------------------------------------------------------


async def roles_index(request: Request) -> Response:
    found = cloud(request).identity.list_roles(caller(request), request.query_params.get("name"))
    base = identity_base(request)
    return _listing(request, "roles", [wire.role_json(r, base) for r in found])


async def roles_create(request: Request) -> Response:
    spec = member(await json_body(request), "role")
    role = cloud(request).identity.create_role(caller(request), spec)
    return ok({"role": wire.role_json(role, identity_base(request))}, 201)


async def roles_show(request: Request) -> Response:
    role = cloud(request).identity.get_role(caller(request), request.path_params["role_id"])
    return ok({"role": wire.role_json(role, identity_base(request))})


async def roles_update(request: Request) -> Response:
    spec = member(await json_body(request), "role")
    role = cloud(request).identity.update_role(
        caller(request), request.path_params["role_id"], spec
    )
    return ok({"role": wire.role_json(role, identity_base(request))})


async def roles_delete(request: Request) -> Response:
    cloud(request).identity.delete_role(caller(request), request.path_params["role_id"])
    return no_content()


# -- role assignments --------------------------------------------------------------------------


def _target(request: Request) -> tuple[str, str]:
    kind = request.path_params.get("target", "system")
    if kind == "system":
        return "system", "all"
    target_type = kind[:-1]  # projects -> project, domains -> domain
    if target_type not in TARGETS:
        raise NotFound(f"Unknown assignment target {kind}.")
    return target_type, request.path_params["target_id"]


async def grants_index(request: Request) -> Response:
    target_type, target_id = _target(request)
    roles = cloud(request).assignments.roles_of(
        caller(request), request.path_params["user_id"], target_type, target_id
    )
    base = identity_base(request)
    return _listing(request, "roles", [wire.role_json(r, base) for r in roles])


async def grant(request: Request) -> Response:
    target_type, target_id = _target(request)
    assignments = cloud(request).assignments
    ctx = caller(request)
    user_id, role_id = request.path_params["user_id"], request.path_params["role_id"]
    if request.method == "PUT":
        assignments.grant(ctx, user_id, target_type, target_id, role_id)
    elif request.method == "DELETE":
        assignments.revoke(ctx, user_id, target_type, target_id, role_id)
    else:
        assignments.check(ctx, user_id, target_type, target_id, role_id)
    return no_content()


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() not in ("0", "false", "no")


async def role_assignments(request: Request) -> Response:
    q = request.query_params
    names = _flag(q.get("include_names"))
    flt = AssignmentFilter(
        user_id=q.get("user.id"),
        role_id=q.get("role.id"),
        project_id=q.get("scope.project.id"),
        domain_id=q.get("scope.domain.id"),
        system="scope.system" in q,
        group_id=q.get("group.id"),
        effective=_flag(q.get("effective")),
        include_names=names,
    )
    found = cloud(request).assignments.list(caller(request), flt)
    base = identity_base(request)
    items = [wire.assignment_json(a, base, names) for a in found]
    return _listing(request, "role_assignments", items)


# -- catalog (read-only: it is what this process serves) --------------------------------------


async def services_index(request: Request) -> Response:
    require_reader_of_all(caller(request))
    base = identity_base(request)
    found = [
        wire.service_json(s, base)
        for s in cloud(request).catalog.services
        if request.query_params.get("type") in (None, s.type)
        and request.query_params.get("name") in (None, s.name)
    ]
    return _listing(request, "services", found)


async def services_show(request: Request) -> Response:
    require_reader_of_all(caller(request))
    service = cloud(request).catalog.service(request.path_params["service_id"])
    if service is None:
        raise NotFound(f"Could not find service: {request.path_params['service_id']}.")
    return ok({"service": wire.service_json(service, identity_base(request))})


def _endpoints(request: Request) -> list[Any]:
    c = cloud(request)
    return c.catalog.endpoints(c.api_base(request), c.s3_base(request))


async def endpoints_index(request: Request) -> Response:
    require_reader_of_all(caller(request))
    q = request.query_params
    found = [
        wire.endpoint_json(e, identity_base(request))
        for e in _endpoints(request)
        if q.get("interface") in (None, e.interface)
        and q.get("service_id") in (None, e.service.id)
        and q.get("region_id", q.get("region")) in (None, e.region)
    ]
    return _listing(request, "endpoints", found)


async def endpoints_show(request: Request) -> Response:
    require_reader_of_all(caller(request))
    for e in _endpoints(request):
        if e.id == request.path_params["endpoint_id"]:
            return ok({"endpoint": wire.endpoint_json(e, identity_base(request))})
    raise NotFound(f"Could not find endpoint: {request.path_params['endpoint_id']}.")


async def regions_index(request: Request) -> Response:
    caller(request)
    region = cloud(request).catalog.region
    return _listing(request, "regions", [wire.region_json(region, identity_base(request))])


async def regions_show(request: Request) -> Response:
    caller(request)
    region = cloud(request).catalog.region
    if request.path_params["region_id"] != region:
        raise NotFound(f"Could not find region: {request.path_params['region_id']}.")
    return ok({"region": wire.region_json(region, identity_base(request))})


_GRANT = "/users/{user_id}/roles/{role_id}"

routes: list[BaseRoute] = [
    Route("/", versions, methods=["GET"]),
    Route("/v3", version, methods=["GET"]),
    Route("/v3/", version, methods=["GET"]),
    Route("/v3/domains", domains_index, methods=["GET"]),
    Route("/v3/domains/{domain_id}", domains_show, methods=["GET"]),
    Route("/v3/projects", projects_index, methods=["GET"]),
    Route("/v3/projects", projects_create, methods=["POST"]),
    Route("/v3/projects/{project_id}", projects_show, methods=["GET"]),
    Route("/v3/projects/{project_id}", projects_update, methods=["PATCH"]),
    Route("/v3/projects/{project_id}", projects_delete, methods=["DELETE"]),
    Route("/v3/users", users_index, methods=["GET"]),
    Route("/v3/users", users_create, methods=["POST"]),
    Route("/v3/users/{user_id}", users_show, methods=["GET"]),
    Route("/v3/users/{user_id}", users_update, methods=["PATCH"]),
    Route("/v3/users/{user_id}", users_delete, methods=["DELETE"]),
    Route("/v3/users/{user_id}/password", users_password, methods=["POST"]),
    Route("/v3/users/{user_id}/projects", users_projects, methods=["GET"]),
    Route("/v3/roles", roles_index, methods=["GET"]),
    Route("/v3/roles", roles_create, methods=["POST"]),
    Route("/v3/roles/{role_id}", roles_show, methods=["GET"]),
    Route("/v3/roles/{role_id}", roles_update, methods=["PATCH"]),
    Route("/v3/roles/{role_id}", roles_delete, methods=["DELETE"]),
    Route("/v3/{target}/{target_id}/users/{user_id}/roles", grants_index, methods=["GET"]),
    Route("/v3/{target}/{target_id}" + _GRANT, grant, methods=["PUT", "GET", "HEAD", "DELETE"]),
    Route("/v3/system/users/{user_id}/roles", grants_index, methods=["GET"]),
    Route("/v3/system" + _GRANT, grant, methods=["PUT", "GET", "HEAD", "DELETE"]),
    Route("/v3/role_assignments", role_assignments, methods=["GET"]),
    Route("/v3/services", services_index, methods=["GET"]),
    Route("/v3/services/{service_id}", services_show, methods=["GET"]),
    Route("/v3/endpoints", endpoints_index, methods=["GET"]),
    Route("/v3/endpoints/{endpoint_id}", endpoints_show, methods=["GET"]),
    Route("/v3/regions", regions_index, methods=["GET"]),
    Route("/v3/regions/{region_id}", regions_show, methods=["GET"]),
]

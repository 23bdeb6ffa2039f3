"""Nova v2.1 HTTP endpoints: discovery, flavors, keypairs, quotas, limits. Servers: server_routes.py."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from appliance.cloud import cloud
from appliance.compute import wire
from appliance.errors import Invalid, NotFound
from appliance.web.body import json_body, member
from appliance.web.microversions import microversion
from appliance.web.middleware import caller
from appliance.web.pagination import page_request, paginate

BODY_LIMIT = 1 << 20


def v(request: Request) -> tuple[int, int]:
    version = microversion(request)
    return (version.major, version.minor)


def base(request: Request) -> str:
    return cloud(request).api_base(request)


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


async def versions(request: Request) -> Response:
    return ok(wire.versions_json(base(request)))


async def version(request: Request) -> Response:
    return ok({"version": wire.version_doc(base(request))})


def links(
    request: Request, kind: str, next_marker: str | None, limit: int | None
) -> dict[str, Any]:
    if next_marker is None:
        return {}
    from urllib.parse import urlencode

    params = [(k, val) for k, val in request.query_params.multi_items() if k != "marker"]
    params.append(("marker", next_marker))
    href = f"{base(request)}/compute/v2.1/{kind}?{urlencode(params)}"
    return {f"{kind.replace('/detail', '')}_links": [{"rel": "next", "href": href}]}


# -- flavors -----------------------------------------------------------------------------------


def _flavor_list(request: Request, detail: bool) -> Response:
    q = request.query_params
    try:
        min_ram, min_disk = int(q.get("minRam", 0)), int(q.get("minDisk", 0))
    except ValueError:
        raise Invalid("minRam and minDisk must be integers.") from None
    found = cloud(request).flavors.list_flavors(
        caller(request), q.get("is_public"), min_ram, min_disk
    )
    page = paginate(found, page_request(q), key=lambda f: f.id)
    body: dict[str, Any] = {
        "flavors": [wire.flavor_json(f, base(request), v(request), detail) for f in page.items]
    }
    body.update(
        links(
            request,
            "flavors/detail" if detail else "flavors",
            page.next_marker,
            page_request(q).limit,
        )
    )
    return ok(body)


async def flavors_index(request: Request) -> Response:
    return _flavor_list(request, detail=False)


async def flavors_detail(request: Request) -> Response:
    return _flavor_list(request, detail=True)


async def flavors_show(request: Request) -> Response:
    flavor = cloud(request).flavors.get(caller(request), request.path_params["flavor_id"])
    return ok({"flavor": wire.flavor_json(flavor, base(request), v(request))})


async def flavors_create(request: Request) -> Response:
    spec = member(await json_body(request, BODY_LIMIT), "flavor")
    flavor = cloud(request).flavors.create(caller(request), spec)
    return ok({"flavor": wire.flavor_json(flavor, base(request), v(request))})


async def flavors_update(request: Request) -> Response:
    if v(request) < (2, 55):
        raise NotFound("Updating a flavor needs microversion 2.55 or later.")
    spec = member(await json_body(request, BODY_LIMIT), "flavor")
    flavor = cloud(request).flavors.update(caller(request), request.path_params["flavor_id"], spec)
    return ok({"flavor": wire.flavor_json(flavor, base(request), v(request))})


async def flavors_delete(request: Request) -> Response:
    cloud(request).flavors.delete(caller(request), request.path_params["flavor_id"])
    return Response(status_code=202)


def _access_json(flavor_id: str, projects: list[str]) -> dict[str, Any]:
    return {"flavor_access": [{"flavor_id": flavor_id, "tenant_id": p} for p in projects]}


async def flavor_access(request: Request) -> Response:
    fid = request.path_params["flavor_id"]
    return ok(_access_json(fid, cloud(request).flavors.access(caller(request), fid)))


async def flavor_action(request: Request) -> Response:
    fid = request.path_params["flavor_id"]
    body = await json_body(request, BODY_LIMIT)
    flavors = cloud(request).flavors
    if "addTenantAccess" in body:
        projects = flavors.add_access(
            caller(request), fid, (body["addTenantAccess"] or {}).get("tenant")
        )
    elif "removeTenantAccess" in body:
        projects = flavors.remove_access(
            caller(request), fid, (body["removeTenantAccess"] or {}).get("tenant")
        )
    else:
        raise Invalid("There is no such action: " + ", ".join(body))
    return ok(_access_json(fid, projects))


async def extra_specs_index(request: Request) -> Response:
    flavor = cloud(request).flavors.get(caller(request), request.path_params["flavor_id"])
    return ok({"extra_specs": flavor.extra_specs})


async def extra_specs_create(request: Request) -> Response:
    body = await json_body(request, BODY_LIMIT)
    specs = cloud(request).flavors.set_extra_specs(
        caller(request), request.path_params["flavor_id"], body.get("extra_specs")
    )
    return ok({"extra_specs": specs})


async def extra_spec_show(request: Request) -> Response:
    flavor = cloud(request).flavors.get(caller(request), request.path_params["flavor_id"])
    key = request.path_params["key"]
    if key not in flavor.extra_specs:
        raise NotFound(f"Flavor {flavor.id} has no extra specs with key {key}.")
    return ok({key: flavor.extra_specs[key]})


async def extra_spec_update(request: Request) -> Response:
    body = await json_body(request, BODY_LIMIT)
    key = request.path_params["key"]
    if set(body) != {key}:
        raise Invalid("Request body and URI mismatch")
    cloud(request).flavors.set_extra_specs(caller(request), request.path_params["flavor_id"], body)
    return ok({key: str(body[key])})


async def extra_spec_delete(request: Request) -> Response:
    cloud(request).flavors.delete_extra_spec(
        caller(request), request.path_params["flavor_id"], request.path_params["key"]
    )
    return Response(status_code=200)


# -- keypairs ----------------------------------------------------------------------------------


async def keypairs_index(request: Request) -> Response:
    found = cloud(request).keypairs.list_keypairs(
        caller(request), request.query_params.get("user_id")
    )
    q = request.query_params
    page = paginate(found, page_request(q), key=lambda k: k.name) if v(request) >= (2, 35) else None
    items = page.items if page else found
    body: dict[str, Any] = {
        "keypairs": [{"keypair": wire.keypair_json(k, v(request))} for k in items]
    }
    if page:
        body.update(links(request, "os-keypairs", page.next_marker, page_request(q).limit))
    return ok(body)


async def keypairs_create(request: Request) -> Response:
    spec = member(await json_body(request, BODY_LIMIT), "keypair")
    if v(request) < (2, 10):
        spec.pop("user_id", None)
    if v(request) < (2, 2):
        spec.pop("type", None)
    pair = cloud(request).keypairs.create(caller(request), spec)
    return ok(
        {"keypair": wire.keypair_json(pair, v(request), with_private=True)},
        201 if v(request) >= (2, 2) else 200,
    )


async def keypairs_show(request: Request) -> Response:
    pair = cloud(request).keypairs.get(
        caller(request), request.path_params["name"], request.query_params.get("user_id")
    )
    return ok({"keypair": wire.keypair_detail_json(pair, v(request))})


async def keypairs_delete(request: Request) -> Response:
    cloud(request).keypairs.delete(
        caller(request), request.path_params["name"], request.query_params.get("user_id")
    )
    return Response(status_code=204 if v(request) >= (2, 2) else 202)


# -- quotas and limits ---------------------------------------------------------------------------


async def quotas_show(request: Request) -> Response:
    pid = request.path_params["project_id"]
    quota = cloud(request).quotas.quota_set(caller(request), pid)
    return ok({"quota_set": {"id": pid, **quota}})


async def quotas_detail(request: Request) -> Response:
    pid = request.path_params["project_id"]
    quotas = cloud(request).quotas
    quota = quotas.quota_set(caller(request), pid)
    used = quotas.usage(pid)
    detail = {
        k: {"limit": val, "in_use": used.get(k, 0), "reserved": 0} for k, val in quota.items()
    }
    return ok({"quota_set": {"id": pid, **detail}})


async def quotas_defaults(request: Request) -> Response:
    caller(request)
    return ok(
        {"quota_set": {"id": request.path_params["project_id"], **cloud(request).quotas.defaults()}}
    )


async def quotas_update(request: Request) -> Response:
    pid = request.path_params["project_id"]
    changes = member(await json_body(request, BODY_LIMIT), "quota_set")
    return ok({"quota_set": cloud(request).quotas.update(caller(request), pid, changes)})


async def quotas_delete(request: Request) -> Response:
    cloud(request).quotas.reset(caller(request), request.path_params["project_id"])
    return Response(status_code=202)


async def limits(request: Request) -> Response:
    ctx = caller(request)
    project = request.query_params.get("tenant_id") if ctx.is_admin else None
    pid = project or ctx.project_id or ""
    quotas = cloud(request).quotas
    return ok(wire.limits_json(quotas.quota_set(ctx, pid), quotas.usage(pid)))


routes: list[BaseRoute] = [
    Route("/", version, methods=["GET"]),
    Route("/flavors", flavors_index, methods=["GET"]),
    Route("/flavors", flavors_create, methods=["POST"]),
    Route("/flavors/detail", flavors_detail, methods=["GET"]),
    Route("/flavors/{flavor_id}", flavors_show, methods=["GET"]),
    Route("/flavors/{flavor_id}", flavors_update, methods=["PUT"]),
    Route("/flavors/{flavor_id}", flavors_delete, methods=["DELETE"]),
    Route("/flavors/{flavor_id}/os-flavor-access", flavor_access, methods=["GET"]),
    Route("/flavors/{flavor_id}/action", flavor_action, methods=["POST"]),
    Route("/flavors/{flavor_id}/os-extra_specs", extra_specs_index, methods=["GET"]),
    Route("/flavors/{flavor_id}/os-extra_specs", extra_specs_create, methods=["POST"]),
    Route("/flavors/{flavor_id}/os-extra_specs/{key}", extra_spec_show, methods=["GET"]),
    Route("/flavors/{flavor_id}/os-extra_specs/{key}", extra_spec_update, methods=["PUT"]),
    Route("/flavors/{flavor_id}/os-extra_specs/{key}", extra_spec_delete, methods=["DELETE"]),
    Route("/os-keypairs", keypairs_index, methods=["GET"]),
    Route("/os-keypairs", keypairs_create, methods=["POST"]),
    Route("/os-keypairs/{name}", keypairs_show, methods=["GET"]),
    Route("/os-keypairs/{name}", keypairs_delete, methods=["DELETE"]),
    Route("/os-quota-sets/{project_id}", quotas_show, methods=["GET"]),
    Route("/os-quota-sets/{project_id}", quotas_update, methods=["PUT"]),
    Route("/os-quota-sets/{project_id}", quotas_delete, methods=["DELETE"]),
    Route("/os-quota-sets/{project_id}/defaults", quotas_defaults, methods=["GET"]),
    Route("/os-quota-sets/{project_id}/detail", quotas_detail, methods=["GET"]),
    Route("/limits", limits, methods=["GET"]),
]

"""Neutron v2.0 HTTP endpoints at /networking: thin handlers over network/service.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.cloud import Cloud, cloud
from appliance.context import Context
from appliance.errors import NotFound
from appliance.network import wire
from appliance.network.service import err
from appliance.web.body import json_body, member
from appliance.web.middleware import caller
from appliance.web.pagination import page_request, paginate

BODY_LIMIT = 1 << 20


def base(request: Request) -> str:
    return cloud(request).api_base(request)


async def versions(request: Request) -> Response:
    return JSONResponse(wire.versions_json(base(request)))


async def resources(request: Request) -> Response:
    caller(request)
    return JSONResponse(wire.resources_json(base(request)))


async def extensions(request: Request) -> Response:
    caller(request)
    return JSONResponse({"extensions": [wire.extension_json(*e) for e in wire.EXTENSIONS]})


async def extension(request: Request) -> Response:
    caller(request)
    alias = request.path_params["alias"]
    for e in wire.EXTENSIONS:
        if e[0] == alias:
            return JSONResponse({"extension": wire.extension_json(*e)})
    raise err(NotFound, "ExtensionNotFound", f"Extension with alias {alias} does not exist")


# -- one shape per resource ----------------------------------------------------------------------


def _network(c: Cloud, row: dict[str, Any]) -> dict[str, Any]:
    return wire.network_json(row, c.network.subnet_ids(row["id"]))


def _port(c: Cloud, row: dict[str, Any]) -> dict[str, Any]:
    return wire.port_json(row, c.network.fixed_ips(row["id"]))


def _group(c: Cloud, row: dict[str, Any]) -> dict[str, Any]:
    return wire.security_group_json(row, c.security_groups.rules(row["id"]))


def _list(request: Request, collection: str, items: list[dict[str, Any]]) -> Response:
    q = request.query_params
    filters = {k: q.getlist(k) for k in q}
    found = wire.select(items, filters)
    page = paginate(found, page_request(q), key=lambda item: item["id"])
    fields = q.getlist("fields")
    body: dict[str, Any] = {collection: [wire.project(i, fields) for i in page.items]}
    if page.next_marker is not None:
        params = [(k, val) for k, val in q.multi_items() if k != "marker"] + [
            ("marker", page.next_marker)
        ]
        href = f"{base(request)}{request.url.path}?{urlencode(params)}"
        body[f"{collection}_links"] = [{"rel": "next", "href": href}]
    return JSONResponse(body)


def _one(request: Request, name: str, body: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse({name: wire.project(body, request.query_params.getlist("fields"))}, status)


async def _spec(request: Request, name: str) -> dict[str, Any]:
    return member(await json_body(request, BODY_LIMIT), name)


def _ctx(request: Request) -> tuple[Cloud, Context]:
    return cloud(request), caller(request)


# -- networks --------------------------------------------------------------------------------------


async def networks_index(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _list(request, "networks", [_network(c, r) for r in c.network.list_networks(ctx)])


async def networks_create(request: Request) -> Response:
    c, ctx = _ctx(request)
    row = c.network.create_network(ctx, await _spec(request, "network"))
    return _one(request, "network", _network(c, row), 201)


async def network_show(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _one(
        request, "network", _network(c, c.network.get_network(ctx, request.path_params["id"]))
    )


async def network_update(request: Request) -> Response:
    c, ctx = _ctx(request)
    row = c.network.update_network(ctx, request.path_params["id"], await _spec(request, "network"))
    return _one(request, "network", _network(c, row))


async def network_delete(request: Request) -> Response:
    c, ctx = _ctx(request)
    c.network.delete_network(ctx, request.path_params["id"])
    return Response(status_code=204)


# -- subnets ---------------------------------------------------------------------------------------


async def subnets_index(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _list(request, "subnets", [wire.subnet_json(r) for r in c.network.list_subnets(ctx)])


async def subnets_create(request: Request) -> Response:
    c, ctx = _ctx(request)
    row = c.network.create_subnet(ctx, await _spec(request, "subnet"))
    return _one(request, "subnet", wire.subnet_json(row), 201)


async def subnet_show(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _one(
        request, "subnet", wire.subnet_json(c.network.get_subnet(ctx, request.path_params["id"]))
    )


async def subnet_update(request: Request) -> Response:
    c, ctx = _ctx(request)
    row = c.network.update_subnet(ctx, request.path_params["id"], await _spec(request, "subnet"))
    return _one(request, "subnet", wire.subnet_json(row))


async def subnet_delete(request: Request) -> Response:
    c, ctx = _ctx(request)
    c.network.delete_subnet(ctx, request.path_params["id"])
    return Response(status_code=204)


# -- ports -----------------------------------------------------------------------------------------


async def ports_index(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _list(request, "ports", [_port(c, r) for r in c.network.list_ports(ctx)])


async def ports_create(request: Request) -> Response:
    c, ctx = _ctx(request)
    row = c.network.create_port(ctx, await _spec(request, "port"))
    return _one(request, "port", _port(c, row), 201)


async def port_show(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _one(request, "port", _port(c, c.network.get_port(ctx, request.path_params["id"])))


async def port_update(request: Request) -> Response:
    c, ctx = _ctx(request)
    row = c.network.update_port(ctx, request.path_params["id"], await _spec(request, "port"))
    return _one(request, "port", _port(c, row))


async def port_delete(request: Request) -> Response:
    c, ctx = _ctx(request)
    c.network.delete_port(ctx, request.path_params["id"])
    return Response(status_code=204)


# -- security groups -------------------------------------------------------------------------------


async def groups_index(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _list(
        request, "security_groups", [_group(c, r) for r in c.security_groups.list_groups(ctx)]
    )


async def groups_create(request: Request) -> Response:
    c, ctx = _ctx(request)
    row = c.security_groups.create_group(ctx, await _spec(request, "security_group"))
    return _one(request, "security_group", _group(c, row), 201)


async def group_show(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _one(
        request,
        "security_group",
        _group(c, c.security_groups.get_group(ctx, request.path_params["id"])),
    )


async def group_delete(request: Request) -> Response:
    c, ctx = _ctx(request)
    c.security_groups.delete_group(ctx, request.path_params["id"])
    return Response(status_code=204)


async def rules_index(request: Request) -> Response:
    c, ctx = _ctx(request)
    rules = [
        wire.rule_json(r)
        for g in c.security_groups.list_groups(ctx)
        for r in c.security_groups.rules(g["id"])
    ]
    return _list(request, "security_group_rules", rules)


async def rules_create(request: Request) -> Response:
    c, ctx = _ctx(request)
    row = c.security_groups.create_rule(ctx, await _spec(request, "security_group_rule"))
    return _one(request, "security_group_rule", wire.rule_json(row), 201)


async def rule_show(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _one(
        request,
        "security_group_rule",
        wire.rule_json(c.security_groups.get_rule(ctx, request.path_params["id"])),
    )


async def rule_delete(request: Request) -> Response:
    c, ctx = _ctx(request)
    c.security_groups.delete_rule(ctx, request.path_params["id"])
    return Response(status_code=204)


# -- routers ---------------------------------------------------------------------------------------


def _router(c: Cloud, row: dict[str, Any]) -> dict[str, Any]:
    return wire.router_json(row, c.routers.interfaces(row["id"]), c.routers.gateway_info(row))


async def routers_index(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _list(request, "routers", [_router(c, r) for r in c.routers.list_routers(ctx)])


async def routers_create(request: Request) -> Response:
    c, ctx = _ctx(request)
    row = c.routers.create(ctx, await _spec(request, "router"))
    return _one(request, "router", _router(c, row), 201)


async def router_show(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _one(request, "router", _router(c, c.routers.get(ctx, request.path_params["id"])))


async def router_update(request: Request) -> Response:
    c, ctx = _ctx(request)
    row = c.routers.update(ctx, request.path_params["id"], await _spec(request, "router"))
    return _one(request, "router", _router(c, row))


async def router_delete(request: Request) -> Response:
    c, ctx = _ctx(request)
    c.routers.delete(ctx, request.path_params["id"])
    return Response(status_code=204)


async def router_add_interface(request: Request) -> Response:
    c, ctx = _ctx(request)
    body = await json_body(request, BODY_LIMIT)
    return JSONResponse(c.routers.add_interface(ctx, request.path_params["id"], body))


async def router_remove_interface(request: Request) -> Response:
    c, ctx = _ctx(request)
    body = await json_body(request, BODY_LIMIT)
    return JSONResponse(c.routers.remove_interface(ctx, request.path_params["id"], body))


# -- floating IPs ----------------------------------------------------------------------------------


async def fips_index(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _list(
        request, "floatingips", [wire.floatingip_json(r) for r in c.floating_ips.list_fips(ctx)]
    )


async def fips_create(request: Request) -> Response:
    c, ctx = _ctx(request)
    row = c.floating_ips.create(ctx, await _spec(request, "floatingip"))
    return _one(request, "floatingip", wire.floatingip_json(row), 201)


async def fip_show(request: Request) -> Response:
    c, ctx = _ctx(request)
    return _one(
        request,
        "floatingip",
        wire.floatingip_json(c.floating_ips.get(ctx, request.path_params["id"])),
    )


async def fip_update(request: Request) -> Response:
    c, ctx = _ctx(request)
    row = c.floating_ips.update(ctx, request.path_params["id"], await _spec(request, "floatingip"))
    return _one(request, "floatingip", wire.floatingip_json(row))


async def fip_delete(request: Request) -> Response:
    c, ctx = _ctx(request)
    c.floating_ips.delete(ctx, request.path_params["id"])
    return Response(status_code=204)


# -- quotas ----------------------------------------------------------------------------------------


async def quota_show(request: Request) -> Response:
    c, ctx = _ctx(request)
    return JSONResponse({"quota": c.network_quotas.show(ctx, request.path_params["project_id"])})


async def quota_details(request: Request) -> Response:
    c, ctx = _ctx(request)
    return JSONResponse({"quota": c.network_quotas.details(ctx, request.path_params["project_id"])})


async def quota_update(request: Request) -> Response:
    c, ctx = _ctx(request)
    quota = c.network_quotas.update(
        ctx, request.path_params["project_id"], await _spec(request, "quota")
    )
    return JSONResponse({"quota": quota})


routes = [
    Route("/v2.0/", resources, methods=["GET"]),
    Route("/v2.0", resources, methods=["GET"]),
    Route("/v2.0/extensions", extensions, methods=["GET"]),
    Route("/v2.0/extensions/{alias}", extension, methods=["GET"]),
    Route("/v2.0/networks", networks_index, methods=["GET"]),
    Route("/v2.0/networks", networks_create, methods=["POST"]),
    Route("/v2.0/networks/{id}", network_show, methods=["GET"]),
    Route("/v2.0/networks/{id}", network_update, methods=["PUT"]),
    Route("/v2.0/networks/{id}", network_delete, methods=["DELETE"]),
    Route("/v2.0/subnets", subnets_index, methods=["GET"]),
    Route("/v2.0/subnets", subnets_create, methods=["POST"]),
    Route("/v2.0/subnets/{id}", subnet_show, methods=["GET"]),
    Route("/v2.0/subnets/{id}", subnet_update, methods=["PUT"]),
    Route("/v2.0/subnets/{id}", subnet_delete, methods=["DELETE"]),
    Route("/v2.0/ports", ports_index, methods=["GET"]),
    Route("/v2.0/ports", ports_create, methods=["POST"]),
    Route("/v2.0/ports/{id}", port_show, methods=["GET"]),
    Route("/v2.0/ports/{id}", port_update, methods=["PUT"]),
    Route("/v2.0/ports/{id}", port_delete, methods=["DELETE"]),
    Route("/v2.0/security-groups", groups_index, methods=["GET"]),
    Route("/v2.0/security-groups", groups_create, methods=["POST"]),
    Route("/v2.0/security-groups/{id}", group_show, methods=["GET"]),
    Route("/v2.0/security-groups/{id}", group_delete, methods=["DELETE"]),
    Route("/v2.0/security-group-rules", rules_index, methods=["GET"]),
    Route("/v2.0/quotas/{project_id}/details", quota_details, methods=["GET"]),
    Route("/v2.0/quotas/{project_id}/details.json", quota_details, methods=["GET"]),
    Route("/v2.0/quotas/{project_id}", quota_show, methods=["GET"]),
    Route("/v2.0/quotas/{project_id}", quota_update, methods=["PUT"]),
    Route("/v2.0/floatingips", fips_index, methods=["GET"]),
    Route("/v2.0/floatingips", fips_create, methods=["POST"]),
    Route("/v2.0/floatingips/{id}", fip_show, methods=["GET"]),
    Route("/v2.0/floatingips/{id}", fip_update, methods=["PUT"]),
    Route("/v2.0/floatingips/{id}", fip_delete, methods=["DELETE"]),
    Route("/v2.0/routers", routers_index, methods=["GET"]),
    Route("/v2.0/routers", routers_create, methods=["POST"]),
    Route("/v2.0/routers/{id}", router_show, methods=["GET"]),
    Route("/v2.0/routers/{id}", router_update, methods=["PUT"]),
    Route("/v2.0/routers/{id}", router_delete, methods=["DELETE"]),
    Route("/v2.0/routers/{id}/add_router_interface", router_add_interface, methods=["PUT"]),
    Route("/v2.0/routers/{id}/remove_router_interface", router_remove_interface, methods=["PUT"]),
    Route("/v2.0/security-group-rules", rules_create, methods=["POST"]),
    Route("/v2.0/security-group-rules/{id}", rule_show, methods=["GET"]),
    Route("/v2.0/security-group-rules/{id}", rule_delete, methods=["DELETE"]),
]

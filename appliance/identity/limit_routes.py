"""Keystone v3 unified limits endpoints: /v3/registered_limits and /v3/limits."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from appliance.cloud import cloud
from appliance.identity import wire
from appliance.identity.routes import _filters, _listing, identity_base, no_content, ok
from appliance.web.body import json_body, member
from appliance.web.middleware import caller

_KEYS = ("service_id", "region_id", "resource_name", "project_id")


async def registered_index(request: Request) -> Response:
    rows = cloud(request).limits.list_registered(caller(request), _filters(request, *_KEYS))
    base = identity_base(request)
    return _listing(
        request, "registered_limits", [wire.registered_limit_json(r, base) for r in rows]
    )


async def registered_create(request: Request) -> Response:
    body = await json_body(request)
    rows = cloud(request).limits.create_registered(caller(request), body.get("registered_limits"))
    base = identity_base(request)
    return ok({"registered_limits": [wire.registered_limit_json(r, base) for r in rows]}, 201)


async def registered_show(request: Request) -> Response:
    row = cloud(request).limits.get_registered(caller(request), request.path_params["limit_id"])
    return ok({"registered_limit": wire.registered_limit_json(row, identity_base(request))})


async def registered_update(request: Request) -> Response:
    spec = member(await json_body(request), "registered_limit")
    row = cloud(request).limits.update_registered(
        caller(request), request.path_params["limit_id"], spec
    )
    return ok({"registered_limit": wire.registered_limit_json(row, identity_base(request))})


async def registered_delete(request: Request) -> Response:
    cloud(request).limits.delete_registered(caller(request), request.path_params["limit_id"])
    return no_content()


async def limits_index(request: Request) -> Response:
    rows = cloud(request).limits.list_limits(caller(request), _filters(request, *_KEYS))
    base = identity_base(request)
    return _listing(request, "limits", [wire.limit_json(r, base) for r in rows])


async def limits_create(request: Request) -> Response:
    body = await json_body(request)
    rows = cloud(request).limits.create_limits(caller(request), body.get("limits"))
    base = identity_base(request)
    return ok({"limits": [wire.limit_json(r, base) for r in rows]}, 201)


async def limits_show(request: Request) -> Response:
    row = cloud(request).limits.get_limit(caller(request), request.path_params["limit_id"])
    return ok({"limit": wire.limit_json(row, identity_base(request))})


async def limits_update(request: Request) -> Response:
    spec = member(await json_body(request), "limit")
    row = cloud(request).limits.update_limit(caller(request), request.path_params["limit_id"], spec)
    return ok({"limit": wire.limit_json(row, identity_base(request))})


async def limits_delete(request: Request) -> Response:
    cloud(request).limits.delete_limit(caller(request), request.path_params["limit_id"])
    return no_content()


async def limits_model(request: Request) -> Response:
    caller(request)
    return ok(
        {"model": {"name": "flat", "description": "Limits are set per project; no hierarchy."}}
    )


routes: list[BaseRoute] = [
    Route("/v3/registered_limits", registered_index, methods=["GET"]),
    Route("/v3/registered_limits", registered_create, methods=["POST"]),
    Route("/v3/registered_limits/{limit_id}", registered_show, methods=["GET"]),
    Route("/v3/registered_limits/{limit_id}", registered_update, methods=["PATCH"]),
    Route("/v3/registered_limits/{limit_id}", registered_delete, methods=["DELETE"]),
    Route("/v3/limits/model", limits_model, methods=["GET"]),
    Route("/v3/limits", limits_index, methods=["GET"]),
    Route("/v3/limits", limits_create, methods=["POST"]),
    Route("/v3/limits/{limit_id}", limits_show, methods=["GET"]),
    Route("/v3/limits/{limit_id}", limits_update, methods=["PATCH"]),
    Route("/v3/limits/{limit_id}", limits_delete, methods=["DELETE"]),
]

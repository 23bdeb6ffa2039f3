"""Nova v2.1 server endpoints: CRUD, actions, metadata, console output, instance actions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from appliance.cloud import cloud
from appliance.compute import server_actions, wire
from appliance.compute.models import Server, Task
from appliance.compute.routes import BODY_LIMIT, base, links, ok, v
from appliance.context import Context
from appliance.errors import Invalid, NotFound
from appliance.web.body import json_body, member
from appliance.web.middleware import caller
from appliance.web.pagination import page_request, paginate

# Query parameters Nova knows for server lists (2.75 answers 400 for others).
LIST_PARAMS = {
    "name", "status", "image", "flavor", "changes-since", "changes-before", "limit", "marker", "all_tenants",
    "project_id", "tenant_id", "user_id", "sort_key", "sort_dir", "deleted", "ip", "ip6", "host", "tags",
    "tags-any", "not-tags", "not-tags-any", "reservation_id", "availability_zone", "locked", "description",
    "launched_at", "terminated_at", "config_drive", "key_name", "created_at", "updated_at", "power_state",
    "vm_state", "task_state", "uuid", "hostname", "node", "progress", "access_ip_v4", "access_ip_v6",
    "launch_index", "kernel_id", "ramdisk_id", "root_device_name", "block_device_mapping", "display_name",
    "display_description", "image_ref", "instance_type_id", "security_groups", "info_cache", "metadata",
}  # fmt: skip


def _volumes(request: Request, server_id: str) -> list[tuple[str, bool]]:
    return cloud(request).attachments.summary(server_id)


def _addresses(request: Request, server_id: str) -> dict[str, list[dict[str, Any]]]:
    return cloud(request).network.addresses(server_id)


SIMPLE_ACTIONS = {
    "os-stop": ("stop", Task.POWERING_OFF),
    "os-start": ("start", Task.POWERING_ON),
    "pause": ("pause", Task.PAUSING),
    "unpause": ("unpause", Task.UNPAUSING),
    "suspend": ("suspend", Task.SUSPENDING),
    "resume": ("resume", Task.RESUMING),
    "confirmResize": ("confirmResize", Task.RESIZE_CONFIRMING),
    "revertResize": ("revertResize", Task.RESIZE_REVERTING),
}


def _admin(request: Request) -> bool:
    return caller(request).is_admin


def _list(request: Request, detail: bool) -> Response:
    ctx = caller(request)
    q = request.query_params
    if v(request) >= (2, 75):
        unknown = set(q.keys()) - LIST_PARAMS
        if unknown:
            raise Invalid(f"Invalid input for query parameters {', '.join(sorted(unknown))}.")
    filters: dict[str, Any] = {
        k: q[k]
        for k in ("name", "image", "flavor", "changes-since", "user_id", "project_id", "tenant_id")
        if k in q
    }
    if q.getlist("status"):
        filters["status"] = q.getlist("status")
    if q.get("all_tenants", "").lower() not in ("", "0", "false", "f", "off", "no"):
        filters["all_tenants"] = True
    elif "all_tenants" in q and q["all_tenants"] == "":
        filters["all_tenants"] = True
    found = cloud(request).servers.list_servers(ctx, filters)
    page = paginate(found, page_request(q), key=lambda s: s.id)
    if detail:
        items = [
            wire.server_json(
                s,
                base(request),
                v(request),
                ctx.is_admin,
                False,
                _volumes(request, s.id),
                _addresses(request, s.id),
                cloud(request).network.security_group_names(s.id),
            )
            for s in page.items
        ]
    else:
        items = [wire.server_brief_json(s, base(request)) for s in page.items]
    body: dict[str, Any] = {"servers": items}
    body.update(
        links(
            request,
            "servers/detail" if detail else "servers",
            page.next_marker,
            page_request(q).limit,
        )
    )
    return ok(body)


async def servers_index(request: Request) -> Response:
    return _list(request, detail=False)


async def servers_detail(request: Request) -> Response:
    return _list(request, detail=True)


async def servers_create(request: Request) -> Response:
    spec = member(await json_body(request, BODY_LIMIT), "server")
    made = cloud(request).servers.create(caller(request), spec, v(request))
    first = made[0]
    if spec.get("return_reservation_id"):
        return ok({"reservation_id": first.reservation_id}, 202)
    body = {"server": {"id": first.id, "links": wire.server_brief_json(first, base(request))["links"],
                       "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}]}}  # fmt: skip
    return ok(body, 202, {"Location": f"{base(request)}/compute/v2.1/servers/{first.id}"})


def _server_view(request: Request, ctx: Context, server: Server) -> dict[str, Any]:
    """A server as show, update and rebuild answer it: with its volumes and addresses."""
    return wire.server_json(
        server, base(request), v(request), ctx.is_admin, True,
        _volumes(request, server.id), _addresses(request, server.id),
        cloud(request).network.security_group_names(server.id),
    )  # fmt: skip


async def servers_show(request: Request) -> Response:
    ctx = caller(request)
    server = cloud(request).servers.get(ctx, request.path_params["server_id"])
    return ok({"server": _server_view(request, ctx, server)})


async def servers_update(request: Request) -> Response:
    ctx = caller(request)
    spec = member(await json_body(request, BODY_LIMIT), "server")
    server = cloud(request).servers.update(ctx, request.path_params["server_id"], spec)
    return ok({"server": _server_view(request, ctx, server)})


async def servers_delete(request: Request) -> Response:
    cloud(request).servers.delete(caller(request), request.path_params["server_id"])
    return Response(status_code=204)


async def server_action(request: Request) -> Response:
    ctx = caller(request)
    server_id = request.path_params["server_id"]
    body = await json_body(request, BODY_LIMIT)
    if len(body) != 1:
        raise Invalid("An action body names exactly one action.")
    ((name, args),) = body.items()
    c = cloud(request)
    servers = c.servers
    if name in SIMPLE_ACTIONS:
        action, task = SIMPLE_ACTIONS[name]
        servers.act(ctx, server_id, action, {}, task)
        return Response(status_code=204 if name == "confirmResize" else 202)
    if name == "reboot":
        kind = (args or {}).get("type")
        if kind not in ("SOFT", "HARD"):
            raise Invalid("Invalid input for field/attribute type: must be SOFT or HARD.")
        servers.act(
            ctx,
            server_id,
            "reboot",
            {"type": kind},
            Task.REBOOTING_HARD if kind == "HARD" else Task.REBOOTING,
        )
        return Response(status_code=202)
    if name == "resize":
        server_actions.resize(
            servers, c.flavors, c.quotas, ctx, server_id, (args or {}).get("flavorRef")
        )
        return Response(status_code=202)
    if name == "rebuild":
        spec = args or {}
        image_ref = spec.get("imageRef")
        if not image_ref:
            raise Invalid("Missing imageRef attribute")
        image_id = str(image_ref).rstrip("/").rsplit("/", 1)[-1]
        image = c.images.row(image_id)
        if image is None or not c.images.visible(ctx, image):
            raise Invalid(f"Image {image_id} could not be found.")
        rebuild: dict[str, Any] = {"image_id": image_id}
        for key in ("name", "description"):
            if key in spec:
                rebuild[key] = spec[key]
        if "user_data" in spec and v(request) >= (2, 57):
            rebuild["user_data"] = spec["user_data"]
        if "key_name" in spec and v(request) >= (2, 54):
            rebuild["key_name"] = spec["key_name"]
            rebuild["key_data"] = (
                c.keypairs.get(ctx, spec["key_name"]).public_key if spec["key_name"] else None
            )
        server = servers.act(ctx, server_id, "rebuild", rebuild, Task.REBUILDING)
        return ok(
            {"server": _server_view(request, ctx, server)},
            202,
        )
    if name == "createImage":
        image = server_actions.snapshot(servers, c.images, ctx, server_id, args or {})
        location = f"{base(request)}/image/v2/images/{image.id}"
        if v(request) >= (2, 45):
            return ok({"image_id": image.id}, 202)
        return Response(status_code=202, headers={"Location": location})
    if name in ("lock", "unlock"):
        reason = (
            (args or {}).get("locked_reason") if name == "lock" and v(request) >= (2, 73) else None
        )
        servers.lock(ctx, server_id, name == "lock", reason)
        return Response(status_code=202)
    if name in (
        "os-getVNCConsole",
        "os-getSPICEConsole",
        "os-getRDPConsole",
        "os-getSerialConsole",
    ):
        if v(request) >= (2, 6):
            raise Invalid(f"{name} was replaced by POST /servers/{{id}}/remote-consoles in 2.6.")
        kind = (args or {}).get("type", "")
        server = servers.get(ctx, server_id)
        url = c.consoles.issue(
            server, "vnc" if name == "os-getVNCConsole" else name, kind, base(request)
        )
        return ok({"console": {"type": kind, "url": url}})
    if name == "os-getConsoleOutput":
        server = servers.get(ctx, server_id)
        length = (args or {}).get("length")
        return ok({"output": c.console_output(server, length)})
    raise Invalid(f"There is no such action: {name}")


async def remote_console(request: Request) -> Response:
    if v(request) < (2, 6):
        raise NotFound("Remote consoles need microversion 2.6 or later.")
    ctx = caller(request)
    spec = member(await json_body(request, BODY_LIMIT), "remote_console")
    server = cloud(request).servers.get(ctx, request.path_params["server_id"])
    protocol, kind = spec.get("protocol", ""), spec.get("type", "")
    url = cloud(request).consoles.issue(server, protocol, kind, base(request))
    return ok({"remote_console": {"protocol": protocol, "type": kind, "url": url}})


# -- metadata ----------------------------------------------------------------------------------


async def metadata_index(request: Request) -> Response:
    server = cloud(request).servers.get(caller(request), request.path_params["server_id"])
    return ok({"metadata": server.metadata})


async def metadata_set(request: Request) -> Response:
    body = await json_body(request, BODY_LIMIT)
    merged = cloud(request).servers.set_metadata(
        caller(request),
        request.path_params["server_id"],
        body.get("metadata"),
        replace=request.method == "PUT",
    )
    return ok({"metadata": merged})


async def metadata_item(request: Request) -> Response:
    server = cloud(request).servers.get(caller(request), request.path_params["server_id"])
    key = request.path_params["key"]
    if key not in server.metadata:
        raise NotFound(f"Metadata item was not found: {key}")
    return ok({"meta": {key: server.metadata[key]}})


async def metadata_item_set(request: Request) -> Response:
    body = member(await json_body(request, BODY_LIMIT), "meta")
    key = request.path_params["key"]
    if set(body) != {key}:
        raise Invalid("Request body and URI mismatch")
    cloud(request).servers.set_metadata(
        caller(request), request.path_params["server_id"], body, replace=False
    )
    return ok({"meta": body})


async def metadata_item_delete(request: Request) -> Response:
    cloud(request).servers.delete_metadata(
        caller(request), request.path_params["server_id"], request.path_params["key"]
    )
    return Response(status_code=204)


# -- instance actions --------------------------------------------------------------------------


async def actions_index(request: Request) -> Response:
    ctx = caller(request)
    rows = cloud(request).servers.actions(ctx, request.path_params["server_id"])
    return ok(
        {
            "instanceActions": [
                wire.action_json(r, v(request), ctx.is_admin, events=False) for r in rows
            ]
        }
    )


async def actions_show(request: Request) -> Response:
    ctx = caller(request)
    rows = cloud(request).servers.actions(ctx, request.path_params["server_id"])
    for row in rows:
        if row["request_id"] == request.path_params["request_id"]:
            events = ctx.is_admin or v(request) >= (2, 51)
            return ok(
                {"instanceAction": wire.action_json(row, v(request), ctx.is_admin, events=events)}
            )
    raise NotFound(
        f"Action for request_id {request.path_params['request_id']} on instance could not be found"
    )


_S = "/servers/{server_id}"

routes: list[BaseRoute] = [
    Route("/servers", servers_index, methods=["GET"]),
    Route("/servers", servers_create, methods=["POST"]),
    Route("/servers/detail", servers_detail, methods=["GET"]),
    Route(_S, servers_show, methods=["GET"]),
    Route(_S, servers_update, methods=["PUT"]),
    Route(_S, servers_delete, methods=["DELETE"]),
    Route(_S + "/action", server_action, methods=["POST"]),
    Route(_S + "/remote-consoles", remote_console, methods=["POST"]),
    Route(_S + "/metadata", metadata_index, methods=["GET"]),
    Route(_S + "/metadata", metadata_set, methods=["PUT", "POST"]),
    Route(_S + "/metadata/{key}", metadata_item, methods=["GET"]),
    Route(_S + "/metadata/{key}", metadata_item_set, methods=["PUT"]),
    Route(_S + "/metadata/{key}", metadata_item_delete, methods=["DELETE"]),
    Route(_S + "/os-instance-actions", actions_index, methods=["GET"]),
    Route(_S + "/os-instance-actions/{request_id}", actions_show, methods=["GET"]),
]

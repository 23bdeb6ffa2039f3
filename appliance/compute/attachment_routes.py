"""Nova's os-volume_attachments (hot-plug block-storage volumes into servers, 2.89 shape above 2.88)
and os-interface (hot-plug ports)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from appliance.cloud import cloud
from appliance.compute.routes import BODY_LIMIT, ok, v
from appliance.compute.wire import interface_json
from appliance.errors import Invalid
from appliance.volumes.models import Volume
from appliance.web.body import json_body, member
from appliance.web.middleware import caller


def attachment_json(vol: Volume, server_id: str, version: tuple[int, int]) -> dict[str, Any]:
    body: dict[str, Any] = {"device": vol.device, "serverId": server_id, "volumeId": vol.id}
    if version < (2, 89):
        body["id"] = vol.id
    if version >= (2, 70):
        body["tag"] = None
    if version >= (2, 79):
        body["delete_on_termination"] = vol.delete_on_termination
    if version >= (2, 89):
        body["attachment_id"] = vol.attachment_id
        body["bdm_uuid"] = vol.attachment_id
    return body


async def attachments_index(request: Request) -> Response:
    server_id = request.path_params["server_id"]
    found = cloud(request).attachments.list(caller(request), server_id)
    return ok({"volumeAttachments": [attachment_json(vol, server_id, v(request)) for vol in found]})


async def attachments_show(request: Request) -> Response:
    server_id = request.path_params["server_id"]
    vol = cloud(request).attachments.get(
        caller(request), server_id, request.path_params["volume_id"]
    )
    return ok({"volumeAttachment": attachment_json(vol, server_id, v(request))})


async def attachments_create(request: Request) -> Response:
    spec = member(await json_body(request, BODY_LIMIT), "volumeAttachment")
    volume_id = spec.get("volumeId")
    if not isinstance(volume_id, str) or not volume_id:
        raise Invalid("Invalid input for field/attribute volumeId.")
    server_id = request.path_params["server_id"]
    delete = bool(spec.get("delete_on_termination")) if v(request) >= (2, 79) else False
    vol = cloud(request).attachments.attach(caller(request), server_id, volume_id, delete)
    return ok({"volumeAttachment": attachment_json(vol, server_id, v(request))})


async def attachments_delete(request: Request) -> Response:
    cloud(request).attachments.detach(
        caller(request), request.path_params["server_id"], request.path_params["volume_id"]
    )
    return Response(status_code=202)


async def interfaces_index(request: Request) -> Response:
    found = cloud(request).interfaces.list(caller(request), request.path_params["server_id"])
    return ok({"interfaceAttachments": [interface_json(p, v(request)) for p in found]})


async def interfaces_show(request: Request) -> Response:
    port = cloud(request).interfaces.get(
        caller(request), request.path_params["server_id"], request.path_params["port_id"]
    )
    return ok({"interfaceAttachment": interface_json(port, v(request))})


async def interfaces_create(request: Request) -> Response:
    spec = member(await json_body(request, BODY_LIMIT), "interfaceAttachment")
    port = await cloud(request).interfaces.attach(
        caller(request), request.path_params["server_id"], spec
    )
    return ok({"interfaceAttachment": interface_json(port, v(request))})


async def interfaces_delete(request: Request) -> Response:
    await cloud(request).interfaces.detach(
        caller(request), request.path_params["server_id"], request.path_params["port_id"]
    )
    return Response(status_code=202)


_A = "/servers/{server_id}/os-volume_attachments"
_I = "/servers/{server_id}/os-interface"
routes: list[BaseRoute] = [
    Route(_A, attachments_index, methods=["GET"]),
    Route(_A, attachments_create, methods=["POST"]),
    Route(_A + "/{volume_id}", attachments_show, methods=["GET"]),
    Route(_A + "/{volume_id}", attachments_delete, methods=["DELETE"]),
    Route(_I, interfaces_index, methods=["GET"]),
    Route(_I, interfaces_create, methods=["POST"]),
    Route(_I + "/{port_id}", interfaces_show, methods=["GET"]),
    Route(_I + "/{port_id}", interfaces_delete, methods=["DELETE"]),
]

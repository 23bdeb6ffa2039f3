"""Glance v2 HTTP endpoints."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from appliance.cloud import cloud
from appliance.errors import Invalid, UnsupportedMedia
from appliance.http_protocol import direct
from appliance.images import wire
from appliance.images.models import Image
from appliance.images.service import NoContent
from appliance.web.body import json_body
from appliance.web.middleware import caller
from appliance.web.pagination import page_request, paginate

JSON_LIMIT = 65_536


def image_base(request: Request) -> str:
    return cloud(request).api_base(request) + "/image"


async def versions(request: Request) -> Response:
    return JSONResponse(wire.versions_json(image_base(request)), status_code=300)


async def versions_v2(request: Request) -> Response:
    return JSONResponse(wire.versions_json(image_base(request)))


def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    f: dict[str, Any] = {}
    for key in (
        "name",
        "status",
        "owner",
        "visibility",
        "member_status",
        "disk_format",
        "container_format",
    ):
        if key in q:
            f[key] = q[key]
    if "id" in q:
        value = q["id"]
        f["ids"] = set(value[3:].split(",")) if value.startswith("in:") else {value}
    if q.getlist("tag"):
        f["tags"] = q.getlist("tag")
    for key in ("protected", "os_hidden"):
        if key in q:
            f[key] = q[key].lower() == "true"
    for key in ("size_min", "size_max"):
        if key in q:
            try:
                f[key] = int(q[key])
            except ValueError:
                raise Invalid(f"{key} must be an integer.") from None
    known = {"limit", "marker", "sort", "sort_key", "sort_dir", "id", "tag", "size_min", "size_max",
             "protected", "os_hidden", *f}  # fmt: skip
    props = {k: v for k, v in q.items() if k not in known}
    if props:
        f["properties"] = props
    return f


NUMERIC_SORT = ("size", "min_disk", "min_ram")


def _sort_value(image: Image, key: str) -> tuple[bool, Any]:
    value = getattr(image, key)
    return (value is None, (value or 0) if key in NUMERIC_SORT else str(value or ""))


def _sorted(images: list[Image], keys: list[tuple[str, bool]]) -> list[Image]:
    result = list(images)
    for key, descending in reversed(keys):  # stable sorts, least significant key first
        result.sort(key=lambda image, k=key: _sort_value(image, k), reverse=descending)  # type: ignore[misc]
    return result


async def images_index(request: Request) -> Response:
    ctx = caller(request)
    images = cloud(request).images.list_images(ctx, _filters(request))
    ordered = _sorted(images, wire.parse_sort(request.query_params))
    page = paginate(ordered, page_request(request.query_params), key=lambda i: i.id)
    next_href = None
    if page.next_marker:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "marker"]
        params.append(("marker", page.next_marker))
        next_href = "/v2/images?" + urlencode(params)
    return JSONResponse(wire.images_json(page.items, next_href))


async def images_create(request: Request) -> Response:
    spec = await json_body(request, JSON_LIMIT)
    image = cloud(request).images.create(caller(request), spec)
    return JSONResponse(
        wire.image_json(image),
        status_code=201,
        headers={"Location": f"{image_base(request)}/v2/images/{image.id}"},
    )


async def images_show(request: Request) -> Response:
    image = cloud(request).images.get(caller(request), request.path_params["image_id"])
    return JSONResponse(wire.image_json(image))


async def images_update(request: Request) -> Response:
    wire.check_patch_type(request.headers.get("content-type", ""))
    raw = await request.body()
    try:
        ops = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("Malformed JSON in request body.") from None
    changes, removed = wire.parse_patch(ops)
    image = cloud(request).images.update(
        caller(request), request.path_params["image_id"], changes, removed
    )
    return JSONResponse(wire.image_json(image))


async def images_delete(request: Request) -> Response:
    c = cloud(request)
    image = c.images.delete(caller(request), request.path_params["image_id"])
    c.image_data.remove(image)
    return Response(status_code=204)


def _octet_stream(request: Request) -> None:
    kind = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
    if kind != "application/octet-stream":
        raise UnsupportedMedia(
            f"Content-Type {kind} is not supported for image data: use application/octet-stream."
        )


async def file_upload(request: Request) -> Response:
    _octet_stream(request)
    await cloud(request).image_data.upload(
        caller(request), request.path_params["image_id"], direct(request.scope, request.stream())
    )
    return Response(status_code=204)


async def file_stage(request: Request) -> Response:
    _octet_stream(request)
    await cloud(request).image_data.stage(
        caller(request), request.path_params["image_id"], direct(request.scope, request.stream())
    )
    return Response(status_code=204)


async def image_import(request: Request) -> Response:
    body = await json_body(request, JSON_LIMIT)
    cloud(request).image_data.start_import(
        caller(request), request.path_params["image_id"], body.get("method")
    )
    return Response(status_code=202)


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].partition("-")
    try:
        if first == "":
            start, end = max(0, size - int(last)), size
        else:
            start, end = int(first), (int(last) + 1 if last else size)
    except ValueError:
        return None
    if start >= size or start >= end:
        raise RangeNotSatisfiable(size)
    return start, min(end, size)


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


async def file_download(request: Request) -> Response:
    c = cloud(request)
    try:
        image = c.images.downloadable(caller(request), request.path_params["image_id"])
    except NoContent:
        return Response(status_code=204)
    assert image.blob and image.size is not None
    headers = {"Content-MD5": image.checksum or "", "Accept-Ranges": "bytes"}
    try:
        span = _range(request.headers.get("range"), image.size)
    except RangeNotSatisfiable as exc:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{exc.size}"})
    if span is None:
        headers["Content-Length"] = str(image.size)
        return StreamingResponse(
            c.blobs.read(image.blob), media_type="application/octet-stream", headers=headers
        )
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{image.size}"
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(
        c.blobs.read(image.blob, start, end),
        status_code=206,
        media_type="application/octet-stream",
        headers=headers,
    )


async def tag(request: Request) -> Response:
    p = request.path_params
    cloud(request).images.set_tag(caller(request), p["image_id"], p["tag"], request.method == "PUT")
    return Response(status_code=204)


async def action(request: Request) -> Response:
    name = request.path_params["action"]
    if name not in ("deactivate", "reactivate"):
        return Response("404 Not Found\n\nUnknown image action.\n", 404, media_type="text/plain")
    cloud(request).images.deactivate(
        caller(request), request.path_params["image_id"], name == "reactivate"
    )
    return Response(status_code=204)


async def members_index(request: Request) -> Response:
    found = cloud(request).image_members.members(caller(request), request.path_params["image_id"])
    return JSONResponse(
        {"members": [wire.member_json(m) for m in found], "schema": "/v2/schemas/members"}
    )


async def members_create(request: Request) -> Response:
    body = await json_body(request, JSON_LIMIT)
    m = cloud(request).image_members.add_member(
        caller(request), request.path_params["image_id"], body.get("member")
    )
    return JSONResponse(wire.member_json(m))


async def members_show(request: Request) -> Response:
    p = request.path_params
    return JSONResponse(
        wire.member_json(
            cloud(request).image_members.member(caller(request), p["image_id"], p["member_id"])
        )
    )


async def members_update(request: Request) -> Response:
    p = request.path_params
    body = await json_body(request, JSON_LIMIT)
    m = cloud(request).image_members.set_member_status(
        caller(request), p["image_id"], p["member_id"], body.get("status")
    )
    return JSONResponse(wire.member_json(m))


async def members_delete(request: Request) -> Response:
    p = request.path_params
    cloud(request).image_members.remove_member(caller(request), p["image_id"], p["member_id"])
    return Response(status_code=204)


def _schema(doc: dict[str, Any]) -> Any:
    async def endpoint(request: Request) -> Response:
        caller(request)
        return JSONResponse(doc)

    return endpoint


async def info_import(request: Request) -> Response:
    caller(request)
    return JSONResponse(wire.import_info())


_IMG = "/v2/images/{image_id}"

routes: list[BaseRoute] = [
    Route("/", versions, methods=["GET"]),
    Route("/v2", versions_v2, methods=["GET"]),
    Route("/v2/", versions_v2, methods=["GET"]),
    Route("/v2/images", images_index, methods=["GET"]),
    Route("/v2/images", images_create, methods=["POST"]),
    Route(_IMG, images_show, methods=["GET"]),
    Route(_IMG, images_update, methods=["PATCH"]),
    Route(_IMG, images_delete, methods=["DELETE"]),
    Route(_IMG + "/file", file_upload, methods=["PUT"]),
    Route(_IMG + "/file", file_download, methods=["GET"]),
    Route(_IMG + "/stage", file_stage, methods=["PUT"]),
    Route(_IMG + "/import", image_import, methods=["POST"]),
    Route(_IMG + "/tags/{tag}", tag, methods=["PUT", "DELETE"]),
    Route(_IMG + "/actions/{action}", action, methods=["POST"]),
    Route(_IMG + "/members", members_index, methods=["GET"]),
    Route(_IMG + "/members", members_create, methods=["POST"]),
    Route(_IMG + "/members/{member_id}", members_show, methods=["GET"]),
    Route(_IMG + "/members/{member_id}", members_update, methods=["PUT"]),
    Route(_IMG + "/members/{member_id}", members_delete, methods=["DELETE"]),
    Route("/v2/schemas/image", _schema(wire.IMAGE_SCHEMA), methods=["GET"]),
    Route("/v2/schemas/images", _schema(wire.IMAGES_SCHEMA), methods=["GET"]),
    Route("/v2/schemas/member", _schema(wire.MEMBER_SCHEMA), methods=["GET"]),
    Route("/v2/schemas/members", _schema(wire.MEMBERS_SCHEMA), methods=["GET"]),
    Route("/v2/info/import", info_import, methods=["GET"]),
]

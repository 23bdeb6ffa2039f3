"""Swift API (/object-store/v1/AUTH_<project_id>) over the same buckets and objects as S3.

Containers are buckets and objects are objects; X-Object-Meta-* is the S3 user metadata. Shapes as in
swift/proxy and swift/common/middleware/listing_formats.py: an empty JSON listing is 200 `[]`, an
empty text listing 204.
"""

from __future__ import annotations

import base64
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from appliance.cloud import cloud
from appliance.context import Context
from appliance.http_protocol import direct
from appliance.objects.errors import S3Error
from appliance.objects.records import Attributes, Checks, Version, check_conditions
from appliance.objects.s3_routes import conditions as http_conditions
from appliance.objects.s3_routes import parse_range
from appliance.objects.service import ObjectStore
from appliance.objects.wire import http_date, iso
from appliance.web.dialects import SWIFT, render_plain
from appliance.web.middleware import REQUEST_ID, caller

SWIFT_VERSION = "2.30.1"
MAX_FILE_SIZE = 5 * 1024**3
LISTING_LIMIT = 10_000


def _account(request: Request) -> tuple[Context, ObjectStore]:
    ctx = caller(request)
    account = request.path_params["account"]
    if account != f"AUTH_{ctx.project_id}":
        raise S3Error("AccessDenied", "This token is not scoped to that account.")
    return ctx, cloud(request).objects


def _meta(request: Request, prefix: str) -> dict[str, str]:
    n = len(prefix)
    return {k[n:]: v for k, v in request.headers.items() if k.startswith(prefix)}


def _fmt(request: Request) -> str:
    fmt = request.query_params.get("format", "")
    if not fmt and "application/json" in request.headers.get("accept", ""):
        fmt = "json"
    return fmt or "plain"


def _limit(request: Request) -> int:
    try:
        return min(int(request.query_params.get("limit", LISTING_LIMIT)), LISTING_LIMIT)
    except ValueError:
        raise S3Error("InvalidArgument", "limit must be an integer.") from None


async def info(request: Request) -> Response:
    return JSONResponse(
        {
            "swift": {
                "version": SWIFT_VERSION,
                "max_file_size": MAX_FILE_SIZE,
                "container_listing_limit": LISTING_LIMIT,
                "account_listing_limit": LISTING_LIMIT,
                "max_meta_name_length": 128,
                "max_meta_value_length": 256,
                "strict_cors_mode": True,
                "policies": [{"name": "Policy-0", "default": True}],
            }
        }
    )


# -- account -------------------------------------------------------------------------------------


async def account(request: Request) -> Response:
    ctx, store = _account(request)
    assert ctx.project_id is not None
    n, objects, size = store.usage(ctx.project_id)
    meta = store.account_meta(ctx.project_id)
    headers = {
        "X-Account-Container-Count": str(n),
        "X-Account-Object-Count": str(objects),
        "X-Account-Bytes-Used": str(size),
        "X-Timestamp": "0",
    }
    for k, v in meta.items():
        headers[f"X-Account-Meta-{k}"] = v
    if request.method == "POST":
        store.set_account_meta(ctx, _meta(request, "x-account-meta-"))
        return Response(b"", 204)
    if request.method == "HEAD":
        return Response(b"", 204, headers=headers)
    q = request.query_params
    prefix, marker, end = q.get("prefix", ""), q.get("marker", ""), q.get("end_marker")
    buckets = [
        b
        for b in store.list_buckets(ctx)
        if b.name.startswith(prefix) and b.name > marker and (end is None or b.name < end)
    ][: _limit(request)]
    if _fmt(request) == "json":
        body = [
            {
                "name": b.name,
                "count": b.objects,
                "bytes": b.bytes,
                "last_modified": b.created_at[:-1],
            }
            for b in buckets
        ]
        return JSONResponse(body, headers=headers)
    if not buckets:
        return Response(b"", 204, headers=headers)
    return Response(
        "".join(b.name + "\n" for b in buckets), headers=headers, media_type="text/plain"
    )


# -- containers ----------------------------------------------------------------------------------


def _container_headers(store: ObjectStore, name: str) -> dict[str, str]:
    b = store.bucket(name)
    headers = {
        "X-Container-Object-Count": str(b.objects),
        "X-Container-Bytes-Used": str(b.bytes),
        "X-Timestamp": "0",
        "X-Storage-Policy": "Policy-0",
    }
    for k, v in b.meta.items():
        headers[f"X-Container-Meta-{k}"] = v
    if b.acl in ("public-read", "public-read-write"):
        headers["X-Container-Read"] = ".r:*,.rlistings"
    return headers


async def container(request: Request) -> Response:
    ctx, store = _account(request)
    name = request.path_params["container"]
    method = request.method
    if method == "PUT":
        created = store.create_bucket(ctx, name, swift=True)
        meta = _meta(request, "x-container-meta-")
        if meta:
            store.set_bucket(
                ctx, name, "s3:PutBucketTagging", meta={**store.bucket(name).meta, **meta}
            )
        return Response(b"", 201 if created else 202)
    if method == "DELETE":
        try:
            store.delete_bucket(ctx, name)
        except S3Error as exc:
            if exc.code == "BucketNotEmpty":
                return render_plain(
                    request,
                    409,
                    "There was a conflict when trying to complete your request.",
                    "Conflict",
                )
            raise
        return Response(b"", 204)
    if method == "POST":
        store.authorize(ctx, name, "s3:PutBucketTagging")
        meta = {**store.bucket(name).meta, **_meta(request, "x-container-meta-")}
        store.set_bucket(
            ctx, name, "s3:PutBucketTagging", meta={k: v for k, v in meta.items() if v}
        )
        return Response(b"", 204)
    store.authorize(ctx, name, "s3:ListBucket")
    headers = _container_headers(store, name)
    if method == "HEAD":
        return Response(b"", 204, headers=headers)
    q = request.query_params
    objects, prefixes, _, _ = store.list_objects(
        name, q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", ""), _limit(request)
    )
    end = q.get("end_marker")
    entries: list[tuple[str, Version | None]] = sorted(
        [(v.key, v) for v in objects] + [(p, None) for p in prefixes], key=lambda e: e[0]
    )
    if end is not None:
        entries = [e for e in entries if e[0] < end]
    if _fmt(request) == "json":
        body: list[dict[str, Any]] = []
        for key, v in entries:
            if v is None:
                body.append({"subdir": key})
            else:
                body.append(
                    {
                        "name": v.key,
                        "hash": v.etag,
                        "bytes": v.size,
                        "content_type": v.content_type,
                        "last_modified": iso(v.modified)[:-1],
                    }
                )
        return JSONResponse(body, headers=headers)
    if not entries:
        return Response(b"", 204, headers=headers)
    return Response("".join(k + "\n" for k, _ in entries), headers=headers, media_type="text/plain")


# -- objects -------------------------------------------------------------------------------------


def _object_headers(v: Version) -> dict[str, str]:
    headers = {
        "Etag": v.etag,
        "Last-Modified": http_date(v.modified),
        "X-Timestamp": f"{v.modified:.5f}",
        "Content-Type": v.content_type,
        "Accept-Ranges": "bytes",
    }
    headers.update(v.headers)
    for k, value in v.meta.items():
        headers[f"X-Object-Meta-{k}"] = value
    return headers


async def obj(request: Request) -> Response:
    ctx, store = _account(request)
    name, key = request.path_params["container"], request.path_params["object"]
    method = request.method
    if method == "PUT":
        checks = Checks()
        etag = request.headers.get("etag")
        if etag:
            try:
                checks.md5_b64 = base64.b64encode(bytes.fromhex(etag.strip('"'))).decode()
            except ValueError:
                raise S3Error("InvalidDigest", "Etag must be a hex MD5.") from None
        length = request.headers.get("content-length")
        checks.length = int(length) if length and length.isdigit() else None
        attrs = Attributes(
            content_type=request.headers.get("content-type") or "application/octet-stream",
            headers={
                k: request.headers[k]
                for k in ("content-encoding", "content-disposition")
                if k in request.headers
            },
            meta=_meta(request, "x-object-meta-"),
        )
        try:
            body = direct(request.scope, request.stream())
            v = await store.put(ctx, name, key, body, attrs, checks)
        except S3Error as exc:
            if exc.code == "BadDigest":
                return render_plain(
                    request,
                    422,
                    "The ETag you sent did not match the object's MD5.",
                    "Unprocessable",
                )
            raise
        return Response(b"", 201, headers={"Etag": v.etag, "Last-Modified": http_date(v.modified)})
    if method == "DELETE":
        store.authorize(ctx, name, "s3:DeleteObject", key)
        store.version(name, key, None)
        store.delete(ctx, name, key, None)
        return Response(b"", 204)
    if method == "POST":
        store.set_object(
            ctx, name, key, None, "s3:PutObject", meta=_meta(request, "x-object-meta-")
        )
        return Response(b"", 202)
    store.authorize(ctx, name, "s3:GetObject", key)
    v = store.version(name, key, None)
    check_conditions(v, http_conditions(request.headers), reading=True)
    headers = _object_headers(v)
    start, end, status = 0, v.size, 200
    if "range" in request.headers:
        found = parse_range(request.headers["range"], v.size)
        if found is not None:
            start, end = found
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{v.size}"
    headers["Content-Length"] = str(end - start)
    if method == "HEAD":
        return Response(b"", status, headers=headers)
    return StreamingResponse(store.read(v, start, end), status, headers=headers)


# -- errors and the app --------------------------------------------------------------------------

_SWIFT_STATUS = {
    "NoSuchKey": 404,
    "NoSuchBucket": 404,
    "AccessDenied": 403,
    "BucketAlreadyExists": 409,
}


async def on_object_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, S3Error)
    status = _SWIFT_STATUS.get(exc.code, exc.status)
    if status == 304 or request.method == "HEAD":
        return Response(b"", status)
    return render_plain(request, status, exc.message, exc.code)


class _TransId:
    """Swift returns X-Trans-Id on every response: the request id."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["x-trans-id"] = scope.get(REQUEST_ID, "")
            await send(message)

        await self.app(scope, receive, send_with_id)


routes = [
    Route("/info", info, methods=["GET"]),
    Route("/v1/{account}", account, methods=["GET", "HEAD", "POST"]),
    Route("/v1/{account}/", account, methods=["GET", "HEAD", "POST"]),
    Route("/v1/{account}/{container}", container, methods=["GET", "HEAD", "PUT", "POST", "DELETE"]),
    Route(
        "/v1/{account}/{container}/", container, methods=["GET", "HEAD", "PUT", "POST", "DELETE"]
    ),
    Route(
        "/v1/{account}/{container}/{object:path}",
        obj,
        methods=["GET", "HEAD", "PUT", "POST", "DELETE"],
    ),
]


def app() -> Starlette:
    from starlette.middleware import Middleware

    return Starlette(
        routes=routes,
        exception_handlers={**SWIFT.exception_handlers(), S3Error: on_object_error},
        middleware=[Middleware(_TransId)],
    )

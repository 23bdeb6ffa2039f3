"""Object store: buckets, browsing by prefix, upload with progress, download, delete; the S3 endpoint
and the EC2 credentials that S3 clients sign with."""

from __future__ import annotations

from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from appliance.cloud import cloud
from appliance.console import session as sessions
from appliance.console.pages import NavItem, action, redirect, render, set_flash, text
from appliance.console.session import Session
from appliance.errors import NubeError
from appliance.objects.errors import S3Error
from appliance.objects.records import Attributes, Checks

BACK = "/console/objects"
PAGE = 200


def _bucket_url(name: str, prefix: str = "") -> str:
    return f"{BACK}/{quote(name)}" + (f"?prefix={quote(prefix)}" if prefix else "")


async def index(request: Request) -> Response:
    session = sessions.require(request)
    c = cloud(request)
    ctx = session.ctx
    buckets = c.objects.list_buckets(ctx)
    creds = [e for e in c.credentials.list_ec2(ctx, ctx.user_id) if e.project_id == ctx.project_id]
    return render(request, session, "objects/buckets.html", buckets=buckets, creds=creds,
                  s3_endpoint=c.s3_base(request))  # fmt: skip


async def browse(request: Request) -> Response:
    session = sessions.require(request)
    store = cloud(request).objects
    name = request.path_params["bucket"]
    prefix = request.query_params.get("prefix", "")
    after = request.query_params.get("after", "")
    try:
        store.authorize(session.ctx, name, "s3:ListBucket")
    except S3Error as exc:
        return redirect(BACK, "error", exc.message)
    objects, prefixes, truncated, last = store.list_objects(name, prefix, "/", after, PAGE)
    parts = prefix.rstrip("/").split("/") if prefix else []
    crumbs = [(p, "/".join(parts[: i + 1]) + "/") for i, p in enumerate(parts)]
    more = (
        f"{_bucket_url(name, prefix)}{'&' if prefix else '?'}after={quote(last)}"
        if truncated
        else None
    )
    return render(request, session, "objects/browse.html", bucket=name, prefix=prefix,
                  objects=objects, prefixes=prefixes, crumbs=crumbs, more=more)  # fmt: skip


@action(BACK)
async def create_bucket(request: Request, session: Session, form: FormData) -> Response:
    name = text(form, "name")
    try:
        cloud(request).objects.create_bucket(session.ctx, name)
    except S3Error as exc:
        return redirect(BACK, "error", exc.message)
    return redirect(_bucket_url(name), "ok", f"Bucket {name} created.")


@action(BACK)
async def delete_bucket(request: Request, session: Session, form: FormData) -> Response:
    name = request.path_params["bucket"]
    try:
        cloud(request).objects.delete_bucket(session.ctx, name)
    except S3Error as exc:
        return redirect(BACK, "error", exc.message)
    return redirect(BACK, "ok", f"Bucket {name} deleted.")


async def start_upload(request: Request) -> Response:
    """Step one of an upload: where the page's script should PUT the file's bytes."""
    session = sessions.require(request)
    form = await request.form()
    token = form.get(sessions.CSRF_FIELD)
    sessions.check_csrf(request, session, token if isinstance(token, str) else None)
    name = request.path_params["bucket"]
    key = text(form, "prefix") + (text(form, "key") or text(form, "filename"))
    try:
        cloud(request).objects.authorize(session.ctx, name, "s3:PutObject", key)
    except S3Error as exc:
        return JSONResponse({"message": exc.message}, status_code=exc.status)
    if not key:
        return JSONResponse({"message": "The object needs a name."}, status_code=400)
    return JSONResponse({"upload": f"{BACK}/{quote(name)}/put?key={quote(key)}",
                         "next": _bucket_url(name, text(form, "prefix"))})  # fmt: skip


async def put(request: Request) -> Response:
    """Step two: the bytes, streamed into the object as they arrive."""
    session = sessions.require(request)
    sessions.check_csrf(request, session, request.headers.get(sessions.CSRF_HEADER))
    name = request.path_params["bucket"]
    key = request.query_params.get("key", "")
    length = request.headers.get("content-length")
    kind = request.headers.get("x-object-type") or "binary/octet-stream"
    checks = Checks(length=int(length) if length and length.isdigit() else None)
    try:
        v = await cloud(request).objects.put(
            session.ctx, name, key, request.stream(), Attributes(content_type=kind), checks
        )
    except S3Error as exc:
        return JSONResponse({"message": exc.message}, status_code=exc.status)
    response = JSONResponse({"key": v.key, "size": v.size, "etag": v.etag})
    set_flash(response, "ok", f"Uploaded {v.key} ({v.size} bytes).")
    return response


async def download(request: Request) -> Response:
    session = sessions.require(request)
    store = cloud(request).objects
    name = request.path_params["bucket"]
    key = request.query_params.get("key", "")
    try:
        store.authorize(session.ctx, name, "s3:GetObject", key)
        v = store.version(name, key, None)
    except S3Error as exc:
        return redirect(_bucket_url(name), "error", exc.message)
    filename = quote(key.rsplit("/", 1)[-1])
    return StreamingResponse(
        store.read(v),
        media_type=v.content_type or "application/octet-stream",
        headers={
            "Content-Length": str(v.size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
            "Cache-Control": "no-store",
        },
    )


@action(BACK)
async def delete_object(request: Request, session: Session, form: FormData) -> Response:
    name = request.path_params["bucket"]
    key = text(form, "key")
    back = _bucket_url(name, text(form, "prefix"))
    try:
        cloud(request).objects.delete(session.ctx, name, key, None)
    except S3Error as exc:
        return redirect(back, "error", exc.message)
    return redirect(back, "ok", f"Deleted {key}.")


async def create_credential(request: Request) -> Response:
    """EC2 credentials: the secret is shown on this one page (it is also in the identity API)."""
    session = sessions.require(request)
    form = await request.form()
    token = form.get(sessions.CSRF_FIELD)
    sessions.check_csrf(request, session, token if isinstance(token, str) else None)
    c = cloud(request)
    ctx = session.ctx
    try:
        cred = c.credentials.create_ec2(ctx, ctx.user_id, ctx.project_id)
    except NubeError as exc:
        return redirect(BACK, "error", exc.message)
    return render(request, session, "objects/credential.html", cred=cred,
                  s3_endpoint=c.s3_base(request))  # fmt: skip


@action(BACK)
async def delete_credential(request: Request, session: Session, form: FormData) -> Response:
    ctx = session.ctx
    cloud(request).credentials.delete_ec2(ctx, ctx.user_id, request.path_params["access"])
    return redirect(BACK, "ok", "Credential deleted.")


nav = [NavItem("Object store", BACK)]
routes = [
    Route("/objects", index, methods=["GET"]),
    Route("/objects", create_bucket, methods=["POST"]),
    Route("/objects/credentials", create_credential, methods=["POST"]),
    Route("/objects/credentials/{access}/delete", delete_credential, methods=["POST"]),
    Route("/objects/{bucket}", browse, methods=["GET"]),
    Route("/objects/{bucket}/delete", delete_bucket, methods=["POST"]),
    Route("/objects/{bucket}/upload", start_upload, methods=["POST"]),
    Route("/objects/{bucket}/put", put, methods=["PUT"]),
    Route("/objects/{bucket}/download", download, methods=["GET"]),
    Route("/objects/{bucket}/object-delete", delete_object, methods=["POST"]),
]

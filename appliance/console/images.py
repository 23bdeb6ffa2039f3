"""Images: upload with a progress bar (the browser streams the file to this console endpoint, which
hands it to the same upload path as Glance's PUT /file), create from a URL, edit, share, delete."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.cloud import cloud
from appliance.console import session as sessions
from appliance.console.pages import NavItem, action, page_of, redirect, render, set_flash, text
from appliance.console.session import Session
from appliance.errors import Forbidden, Invalid, NubeError

BACK = "/console/images"
FORMATS = ("qcow2", "raw", "iso", "vmdk", "vdi", "vhd", "vhdx", "ami", "aki", "ari")
VISIBILITIES = ("private", "shared", "community", "public")


def _spec(form: FormData) -> dict[str, Any]:
    disk_format = text(form, "disk_format", "qcow2")
    container = "ami" if disk_format == "ami" else ("aki" if disk_format == "aki" else "bare")
    if disk_format == "ari":
        container = "ari"
    return {
        "name": text(form, "name"),
        "disk_format": disk_format,
        "container_format": container,
        "visibility": text(form, "visibility", "private"),
        "min_disk": int(text(form, "min_disk") or 0),
        "min_ram": int(text(form, "min_ram") or 0),
    }


async def index(request: Request) -> Response:
    session = sessions.require(request)
    c = cloud(request)
    shown, page = page_of(request, c.images.list_images(session.ctx, {}))
    return render(request, session, "images.html", images=shown, page=page,
                  formats=FORMATS, visibilities=VISIBILITIES)  # fmt: skip


async def create(request: Request) -> Response:
    """Step one of an upload (JSON for the page's script) or a create-from-URL (a form post)."""
    session = sessions.require(request)
    form = await request.form()
    token = form.get(sessions.CSRF_FIELD)
    sessions.check_csrf(request, session, token if isinstance(token, str) else None)
    c = cloud(request)
    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        image = c.images.create(session.ctx, _spec(form))
        if text(form, "url"):
            c.image_data.start_import(
                session.ctx, image.id, {"name": "web-download", "uri": text(form, "url")}
            )
    except (NubeError, ValueError) as exc:
        message = exc.message if isinstance(exc, NubeError) else "Minimum disk and RAM are numbers."
        if wants_json:
            return JSONResponse({"message": message}, status_code=400)
        return redirect(BACK, "error", message)
    if wants_json:
        return JSONResponse({"id": image.id, "upload": f"/console/images/{image.id}/data",
                             "next": BACK})  # fmt: skip
    return redirect(BACK, "ok", f"Importing image {image.name} from its URL.")


async def upload(request: Request) -> Response:
    """Step two: the file's bytes, streamed as they arrive into the image's blob."""
    session = sessions.require(request)
    sessions.check_csrf(request, session, request.headers.get(sessions.CSRF_HEADER))
    c = cloud(request)
    image_id = request.path_params["image_id"]
    try:
        await c.image_data.upload(session.ctx, image_id, request.stream())
    except NubeError as exc:
        status = 403 if isinstance(exc, Forbidden) else 400
        return JSONResponse({"message": exc.message}, status_code=status)
    image = c.images.get(session.ctx, image_id)
    response = JSONResponse({"id": image.id, "status": str(image.status), "next": BACK})
    set_flash(response, "ok", f"Image {image.name} uploaded ({image.size} bytes).")
    return response


@action(BACK)
async def act(request: Request, session: Session, form: FormData) -> Response:
    c = cloud(request)
    ctx = session.ctx
    image_id = request.path_params["image_id"]
    name = text(form, "action")
    if name == "edit":
        changes = {"name": text(form, "name"), "visibility": text(form, "visibility")}
        image = c.images.update(ctx, image_id, changes, set())
        return redirect(BACK, "ok", f"Image {image.name} saved.")
    if name == "share":
        member = c.image_members.add_member(ctx, image_id, text(form, "project_id"))
        return redirect(
            BACK, "ok", f"Shared with project {member.member_id}; it accepts the image there."
        )
    if name == "delete":
        image = c.images.delete(ctx, image_id)
        c.image_data.remove(image)
        return redirect(BACK, "ok", f"Image {image.name} deleted.")
    raise Invalid(f"There is no such action: {name}")


nav = [NavItem("Images", BACK)]
routes = [
    Route("/images", index, methods=["GET"]),
    Route("/images", create, methods=["POST"]),
    Route("/images/{image_id}/data", upload, methods=["PUT"]),
    Route("/images/{image_id}/action", act, methods=["POST"]),
]

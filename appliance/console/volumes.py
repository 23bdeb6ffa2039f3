"""Volumes: create (blank or from an image), attach/detach, extend, snapshot, delete."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.cloud import cloud
from appliance.console import session as sessions
from appliance.console.pages import NavItem, action, page_of, redirect, render, text
from appliance.console.session import Session
from appliance.errors import Invalid
from appliance.images.models import Status as ImageStatus

ATTACHABLE_STATUSES = ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "VERIFY_RESIZE")


async def index(request: Request) -> Response:
    session = sessions.require(request)
    c = cloud(request)
    ctx = session.ctx
    shown, page = page_of(request, c.volumes.list_volumes(ctx, {}))
    servers = c.servers.names(ctx)
    names = {server_id: name for server_id, name, _ in servers}
    return render(
        request,
        session,
        "volumes.html",
        volumes=shown,
        page=page,
        server_names=names,
        servers=[(i, name) for i, name, status in servers if status in ATTACHABLE_STATUSES],
        images=[i for i in c.images.list_images(ctx, {}) if i.status == ImageStatus.ACTIVE],
        snapshots=c.volumes.list_snapshots(ctx, {}),
    )


async def statuses(request: Request) -> Response:
    session = sessions.require(request)
    volumes = cloud(request).volumes
    answer = {}
    for volume_id in request.query_params.getlist("id")[:100]:
        v = volumes.row(volume_id)
        visible = v is not None and (session.ctx.is_admin or v.project_id == session.ctx.project_id)
        answer[volume_id] = {"status": str(v.status) if v and visible else "deleted", "task": None}
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


@action("/console/volumes")
async def create(request: Request, session: Session, form: FormData) -> Response:
    spec: dict[str, object] = {"name": text(form, "name"), "size": text(form, "size")}
    if text(form, "image_id"):
        spec["imageRef"] = text(form, "image_id")
    if text(form, "snapshot_id"):
        spec["snapshot_id"] = text(form, "snapshot_id")
    if text(form, "description"):
        spec["description"] = text(form, "description")
    volume = cloud(request).volumes.create(session.ctx, spec)
    return redirect("/console/volumes", "ok", f"Creating volume {volume.name or volume.id}.")


@action("/console/volumes")
async def act(request: Request, session: Session, form: FormData) -> Response:
    c = cloud(request)
    ctx = session.ctx
    volume_id = request.path_params["volume_id"]
    name = text(form, "action")
    if name == "detach":
        volume = c.volumes.get(ctx, volume_id)
        if not volume.server_id:
            raise Invalid("The volume is not attached.")
        c.attachments.detach(ctx, volume.server_id, volume_id)
        return redirect("/console/volumes", "ok", "Detaching the volume.")
    if name == "extend":
        c.volumes.extend(ctx, volume_id, text(form, "size"))
        return redirect("/console/volumes", "ok", "Extending the volume.")
    if name == "snapshot":
        snap = c.volumes.create_snapshot(
            ctx, {"volume_id": volume_id, "name": text(form, "snapshot_name")}
        )
        return redirect("/console/volumes", "ok", f"Taking snapshot {snap.name or snap.id}.")
    if name == "bootable":
        c.volumes.set_bootable(ctx, volume_id, text(form, "bootable") == "true")
        return redirect("/console/volumes", "ok", "Bootable flag changed.")
    if name == "delete":
        c.volumes.delete(ctx, volume_id, cascade=False)
        return redirect("/console/volumes", "ok", "Deleting the volume.")
    raise Invalid(f"There is no such action: {name}")


@action("/console/volumes")
async def attach(request: Request, session: Session, form: FormData) -> Response:
    volume = cloud(request).attachments.attach(
        session.ctx, text(form, "server_id"), text(form, "volume_id")
    )
    return redirect("/console/volumes", "ok", f"Attaching volume {volume.name or volume.id}.")


@action("/console/volumes")
async def delete_snapshot(request: Request, session: Session, form: FormData) -> Response:
    cloud(request).volumes.delete_snapshot(session.ctx, request.path_params["snapshot_id"])
    return redirect("/console/volumes", "ok", "Deleting the snapshot.")


nav = [NavItem("Volumes", "/console/volumes")]
routes = [
    Route("/volumes", index, methods=["GET"]),
    Route("/volumes/status", statuses, methods=["GET"]),
    Route("/volumes", create, methods=["POST"]),
    Route("/volumes/attach", attach, methods=["POST"]),
    Route("/volumes/{volume_id}/action", act, methods=["POST"]),
    Route("/volumes/snapshots/{snapshot_id}/delete", delete_snapshot, methods=["POST"]),
]

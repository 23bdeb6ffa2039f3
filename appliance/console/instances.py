"""Instances: the list with live status, detail (console log, VNC), and the actions on one instance."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.cloud import cloud
from appliance.compute import server_actions
from appliance.compute.models import Server, Task
from appliance.console import launch
from appliance.console import session as sessions
from appliance.console.pages import PAGE_SIZE, NavItem, action, page_numbers, redirect, render, text
from appliance.console.session import Session
from appliance.errors import Invalid, NotFound

# Form action -> (service action, task state), as the Nova API's server actions map them.
SIMPLE = {
    "start": ("start", Task.POWERING_ON),
    "stop": ("stop", Task.POWERING_OFF),
    "reboot": ("reboot", Task.REBOOTING),
    "hard-reboot": ("reboot", Task.REBOOTING_HARD),
    "pause": ("pause", Task.PAUSING),
    "unpause": ("unpause", Task.UNPAUSING),
    "confirm-resize": ("confirmResize", Task.RESIZE_CONFIRMING),
    "revert-resize": ("revertResize", Task.RESIZE_REVERTING),
}
LOG_LINES = 200


def _row(request: Request, server: Server) -> dict[str, Any]:
    addresses = cloud(request).network.addresses(server.id)
    ips = [a["addr"] for entries in addresses.values() for a in entries]
    return {"server": server, "ips": ips}


async def index(request: Request) -> Response:
    session = sessions.require(request)
    servers = cloud(request).servers
    offset, page = page_numbers(request, servers.count(session.ctx))
    shown = servers.page(session.ctx, offset, PAGE_SIZE)
    rows = [_row(request, s) for s in shown]
    return render(request, session, "instances/list.html", rows=rows, page=page)


async def statuses(request: Request) -> Response:
    """What the list's polling script asks for: the status of the instances on screen."""
    session = sessions.require(request)
    servers = cloud(request).servers
    answer: dict[str, dict[str, Any]] = {}
    for server_id in request.query_params.getlist("id")[:100]:
        try:
            s = servers.get(session.ctx, server_id)
        except NotFound:
            answer[server_id] = {"status": "DELETED", "task": None, "power": 0}
            continue
        answer[server_id] = {"status": s.status, "task": s.task_state, "power": s.power_state}
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


async def detail(request: Request) -> Response:
    session = sessions.require(request)
    c = cloud(request)
    server = c.servers.get(session.ctx, request.path_params["server_id"])
    log = c.console_output(server, LOG_LINES)
    volumes = c.attachments.list(session.ctx, server.id)
    attachable = [
        v
        for v in c.volumes.list_volumes(session.ctx, {})
        if v.status == "available" and v.project_id == server.project_id
    ]
    ports = c.network.server_ports(server.id)
    # An admin's listing spans projects; the page offers only the server's own project's.
    fips = [
        f for f in c.floating_ips.list_fips(session.ctx) if f["project_id"] == server.project_id
    ]
    flavors = c.flavors.list_flavors(session.ctx, None)
    return render(
        request,
        session,
        "instances/detail.html",
        server=server,
        addresses=c.network.addresses(server.id),
        log=log,
        volumes=volumes,
        attachable=attachable,
        ports=ports,
        free_fips=[f for f in fips if not f.get("port_id")],
        bound_fips=[f for f in fips if f.get("port_id") in {p["id"] for p in ports}],
        flavors=[f for f in flavors if f.id != server.flavor.id],
        actions=c.servers.actions(session.ctx, server.id)[:10],
    )


async def console_log(request: Request) -> Response:
    """The serial log alone, for the detail page's refresh button and for reading it whole."""
    session = sessions.require(request)
    c = cloud(request)
    server = c.servers.get(session.ctx, request.path_params["server_id"])
    return Response(
        c.console_output(server, None),
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


async def vnc(request: Request) -> Response:
    """The in-browser console: a fresh console token, noVNC's page embedded."""
    session = sessions.require(request)
    c = cloud(request)
    server = c.servers.get(session.ctx, request.path_params["server_id"])
    url = c.consoles.issue(server, "vnc", "novnc", "")
    return render(request, session, "instances/vnc.html", server=server, url=url)


def _back(request: Request) -> str:
    return f"/console/instances/{request.path_params['server_id']}"


@action(_back)
async def act(request: Request, session: Session, form: FormData) -> Response:
    c = cloud(request)
    server_id = request.path_params["server_id"]
    name = text(form, "action")
    ctx = session.ctx
    if name in SIMPLE:
        verb, task = SIMPLE[name]
        args = {"type": "HARD" if name == "hard-reboot" else "SOFT"} if verb == "reboot" else {}
        c.servers.act(ctx, server_id, verb, args, task)
        return redirect(_back(request), "ok", f"{name.replace('-', ' ').capitalize()} requested.")
    if name == "delete":
        server = c.servers.get(ctx, server_id)
        c.servers.delete(ctx, server_id)
        return redirect("/console/instances", "ok", f"Deleting instance {server.name}.")
    if name == "snapshot":
        image = server_actions.snapshot(
            c.servers, c.images, ctx, server_id, {"name": text(form, "snapshot_name")}
        )
        return redirect(_back(request), "ok", f"Snapshot image {image.name} is being taken.")
    if name == "resize":
        server_actions.resize(
            c.servers, c.flavors, c.quotas, ctx, server_id, text(form, "flavor_id")
        )
        return redirect(_back(request), "ok", "Resize started; confirm or revert it when done.")
    if name == "attach-volume":
        volume = c.attachments.attach(ctx, server_id, text(form, "volume_id"))
        return redirect(_back(request), "ok", f"Attaching volume {volume.name or volume.id}.")
    if name == "detach-volume":
        c.attachments.detach(ctx, server_id, text(form, "volume_id"))
        return redirect(_back(request), "ok", "Detaching the volume.")
    if name == "associate-ip":
        fip = c.floating_ips.update(
            ctx, text(form, "floating_ip_id"), {"port_id": text(form, "port_id")}
        )
        return redirect(
            _back(request), "ok", f"Floating IP {fip['floating_ip_address']} associated."
        )
    if name == "disassociate-ip":
        c.floating_ips.update(ctx, text(form, "floating_ip_id"), {"port_id": None})
        return redirect(_back(request), "ok", "Floating IP disassociated.")
    raise Invalid(f"There is no such action: {name}")


nav = [NavItem("Instances", "/console/instances")]
routes = [
    Route("/instances", index, methods=["GET"]),
    Route("/instances/status", statuses, methods=["GET"]),
    *launch.routes,
    Route("/instances/{server_id}", detail, methods=["GET"]),
    Route("/instances/{server_id}/log", console_log, methods=["GET"]),
    Route("/instances/{server_id}/vnc", vnc, methods=["GET"]),
    Route("/instances/{server_id}/action", act, methods=["POST"]),
]

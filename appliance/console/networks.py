"""Networks: networks with their subnets, routers (external gateway, interfaces) and a topology picture.

The pages show the current project's rows (and shared or external networks), as Horizon's project
panels do, even for an admin whose API listings span every project.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.cloud import Cloud, cloud
from appliance.console import session as sessions
from appliance.console.pages import NavItem, action, redirect, render, text
from appliance.console.session import Session
from appliance.context import Context
from appliance.errors import Invalid

BACK = "/console/networks"


def _mine(ctx: Context, row: dict[str, Any]) -> bool:
    return bool(row["project_id"] == ctx.project_id or row.get("shared") or row.get("external"))


def topology(c: Cloud, ctx: Context) -> dict[str, Any]:
    """Networks, routers and instances, and the links between them, for the picture."""
    networks = [n for n in c.network.list_networks(ctx) if _mine(ctx, n)]
    subnets = [s for s in c.network.list_subnets(ctx) if _mine(ctx, s)]
    routers = [r for r in c.routers.list_routers(ctx) if r["project_id"] == ctx.project_id]
    for n in networks:
        n["subnets"] = [s for s in subnets if s["network_id"] == n["id"]]
    links: list[tuple[str, str]] = []
    for r in routers:
        r["interfaces"] = c.routers.interfaces(r["id"])
        r["gateway"] = c.routers.gateway_info(r)
        links += [(r["id"], i["network_id"]) for i in r["interfaces"]]
        if r["gateway"]:
            links.append((r["id"], r["gateway"]["network_id"]))
    servers = c.servers.page(ctx, 0, 50)
    nodes: list[dict[str, Any]] = []
    for s in servers:
        nets = {p["network_id"] for p in c.network.server_ports(s.id)}
        links += [(s.id, n) for n in nets]
        nodes.append({"id": s.id, "name": s.name, "status": s.status})
    return {"networks": networks, "routers": routers, "servers": nodes, "links": links}


def _layout(topo: dict[str, Any]) -> dict[str, Any]:
    """Coordinates for an SVG: networks as vertical bars, routers and instances as boxes between."""
    nets = topo["networks"]
    width = max(640, 180 * max(1, len(nets)))
    x_of = {n["id"]: 90 + i * 180 for i, n in enumerate(nets)}
    boxes = []
    for row, kind in ((0, "routers"), (1, "servers")):
        for i, item in enumerate(topo[kind]):
            boxes.append({"id": item["id"], "name": item["name"], "kind": kind[:-1],
                          "x": 20 + (i % 6) * 150 + row * 40, "y": 60 + row * 150 + (i // 6) * 60})  # fmt: skip
    at = {b["id"]: b for b in boxes}
    lines = [
        {"x1": at[a]["x"] + 60, "y1": at[a]["y"] + 18, "x2": x_of[b], "y2": at[a]["y"] + 18}
        for a, b in topo["links"]
        if a in at and b in x_of
    ]
    height = max([b["y"] for b in boxes], default=0) + 100
    return {
        "width": width,
        "height": max(height, 260),
        "x_of": x_of,
        "boxes": boxes,
        "lines": lines,
    }


async def index(request: Request) -> Response:
    session = sessions.require(request)
    c = cloud(request)
    topo = topology(c, session.ctx)
    external = [n for n in topo["networks"] if n.get("external")]
    own_subnets = [s for n in topo["networks"] if not n.get("external") for s in n["subnets"]]
    return render(request, session, "networks.html", topo=topo, picture=_layout(topo),
                  external=external, own_subnets=own_subnets)  # fmt: skip


@action(BACK)
async def create_network(request: Request, session: Session, form: FormData) -> Response:
    c = cloud(request)
    network = c.network.create_network(session.ctx, {"name": text(form, "name")})
    if text(form, "cidr"):
        try:
            c.network.create_subnet(
                session.ctx,
                {"network_id": network["id"], "cidr": text(form, "cidr"),
                 "name": text(form, "subnet_name") or f"{network['name']}-subnet"},
            )  # fmt: skip
        except Exception:
            c.network.delete_network(session.ctx, network["id"])
            raise
    return redirect(BACK, "ok", f"Network {network['name'] or network['id']} created.")


@action(BACK)
async def create_subnet(request: Request, session: Session, form: FormData) -> Response:
    subnet = cloud(request).network.create_subnet(
        session.ctx,
        {"network_id": request.path_params["network_id"], "cidr": text(form, "cidr"),
         "name": text(form, "subnet_name")},
    )  # fmt: skip
    return redirect(BACK, "ok", f"Subnet {subnet['cidr']} created.")


@action(BACK)
async def delete_network(request: Request, session: Session, form: FormData) -> Response:
    cloud(request).network.delete_network(session.ctx, request.path_params["network_id"])
    return redirect(BACK, "ok", "Network deleted.")


@action(BACK)
async def create_router(request: Request, session: Session, form: FormData) -> Response:
    spec: dict[str, Any] = {"name": text(form, "name")}
    if text(form, "external_network_id"):
        spec["external_gateway_info"] = {"network_id": text(form, "external_network_id")}
    router = cloud(request).routers.create(session.ctx, spec)
    return redirect(BACK, "ok", f"Router {router['name'] or router['id']} created.")


@action(BACK)
async def router_action(request: Request, session: Session, form: FormData) -> Response:
    routers = cloud(request).routers
    router_id = request.path_params["router_id"]
    name = text(form, "action")
    if name == "add-interface":
        routers.add_interface(session.ctx, router_id, {"subnet_id": text(form, "subnet_id")})
        return redirect(BACK, "ok", "Interface added.")
    if name == "remove-interface":
        routers.remove_interface(session.ctx, router_id, {"subnet_id": text(form, "subnet_id")})
        return redirect(BACK, "ok", "Interface removed.")
    if name == "delete":
        routers.delete(session.ctx, router_id)
        return redirect(BACK, "ok", "Router deleted.")
    raise Invalid(f"There is no such action: {name}")


nav = [NavItem("Networks", "/console/networks")]
routes = [
    Route("/networks", index, methods=["GET"]),
    Route("/networks", create_network, methods=["POST"]),
    Route("/networks/{network_id}/subnets", create_subnet, methods=["POST"]),
    Route("/networks/{network_id}/delete", delete_network, methods=["POST"]),
    Route("/routers", create_router, methods=["POST"]),
    Route("/routers/{router_id}/action", router_action, methods=["POST"]),
]

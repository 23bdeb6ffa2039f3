"""Security groups and their rules, and floating IPs (allocate, release; associate on the instance)."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.cloud import cloud
from appliance.console import session as sessions
from appliance.console.pages import NavItem, action, redirect, render, text
from appliance.console.session import Session
from appliance.errors import Invalid

GROUPS = "/console/security-groups"
FIPS = "/console/floating-ips"


def _port(value: str) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise Invalid(f"Port {value!r} is not a number.") from None


async def groups(request: Request) -> Response:
    session = sessions.require(request)
    sg = cloud(request).security_groups
    found = [g for g in sg.list_groups(session.ctx) if g["project_id"] == session.ctx.project_id]
    for g in found:
        g["rules"] = sg.rules(g["id"])
    names = {g["id"]: g["name"] for g in found}
    return render(request, session, "security_groups.html", groups=found, names=names)


@action(GROUPS)
async def create_group(request: Request, session: Session, form: FormData) -> Response:
    group = cloud(request).security_groups.create_group(
        session.ctx, {"name": text(form, "name"), "description": text(form, "description")}
    )
    return redirect(GROUPS, "ok", f"Security group {group['name']} created.")


@action(GROUPS)
async def delete_group(request: Request, session: Session, form: FormData) -> Response:
    cloud(request).security_groups.delete_group(session.ctx, request.path_params["group_id"])
    return redirect(GROUPS, "ok", "Security group deleted.")


@action(GROUPS)
async def add_rule(request: Request, session: Session, form: FormData) -> Response:
    protocol = text(form, "protocol") or None
    spec: dict[str, Any] = {
        "security_group_id": request.path_params["group_id"],
        "direction": text(form, "direction", "ingress"),
        "ethertype": "IPv4",
        "protocol": protocol,
    }
    low, high = _port(text(form, "port_min")), _port(text(form, "port_max"))
    if low is not None:
        spec["port_range_min"] = low
        spec["port_range_max"] = high if high is not None else low
    if text(form, "remote_ip_prefix"):
        spec["remote_ip_prefix"] = text(form, "remote_ip_prefix")
    cloud(request).security_groups.create_rule(session.ctx, spec)
    return redirect(GROUPS, "ok", "Rule added.")


@action(GROUPS)
async def delete_rule(request: Request, session: Session, form: FormData) -> Response:
    cloud(request).security_groups.delete_rule(session.ctx, request.path_params["rule_id"])
    return redirect(GROUPS, "ok", "Rule deleted.")


async def floating_ips(request: Request) -> Response:
    session = sessions.require(request)
    c = cloud(request)
    ctx = session.ctx
    fips = [f for f in c.floating_ips.list_fips(ctx) if f["project_id"] == ctx.project_id]
    external = [n for n in c.network.list_networks(ctx) if n.get("external")]
    owners = {}
    for f in fips:
        port = c.network.port_row(f["port_id"]) if f.get("port_id") else None
        owners[f["id"]] = port["device_id"] if port else None
    return render(
        request, session, "floating_ips.html", fips=fips, external=external, owners=owners
    )


@action(FIPS)
async def allocate(request: Request, session: Session, form: FormData) -> Response:
    fip = cloud(request).floating_ips.create(
        session.ctx, {"floating_network_id": text(form, "network_id")}
    )
    return redirect(FIPS, "ok", f"Floating IP {fip['floating_ip_address']} allocated.")


@action(FIPS)
async def release(request: Request, session: Session, form: FormData) -> Response:
    cloud(request).floating_ips.delete(session.ctx, request.path_params["fip_id"])
    return redirect(FIPS, "ok", "Floating IP released.")


nav = [NavItem("Security groups", GROUPS), NavItem("Floating IPs", FIPS)]
routes = [
    Route("/security-groups", groups, methods=["GET"]),
    Route("/security-groups", create_group, methods=["POST"]),
    Route("/security-groups/{group_id}/delete", delete_group, methods=["POST"]),
    Route("/security-groups/{group_id}/rules", add_rule, methods=["POST"]),
    Route("/security-groups/rules/{rule_id}/delete", delete_rule, methods=["POST"]),
    Route("/floating-ips", floating_ips, methods=["GET"]),
    Route("/floating-ips", allocate, methods=["POST"]),
    Route("/floating-ips/{fip_id}/release", release, methods=["POST"]),
]

"""The launch wizard: name, source (image or volume), flavor, networks, key pair, security groups,
user-data and count, turned into the same server spec the Nova API takes."""

from __future__ import annotations

import base64
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.cloud import Cloud, cloud
from appliance.compute.wire import MAX_VERSION
from appliance.console import session as sessions
from appliance.console.pages import action, redirect, render, text
from appliance.console.session import Session
from appliance.context import Context
from appliance.errors import Invalid
from appliance.images.models import Status as ImageStatus
from appliance.volumes.models import Status as VolumeStatus

VERSION = tuple(int(x) for x in MAX_VERSION.split("."))


def choices(c: Cloud, ctx: Context) -> dict[str, Any]:
    """What the wizard offers: only what this caller could use through the API."""
    return {
        "images": [i for i in c.images.list_images(ctx, {}) if i.status == ImageStatus.ACTIVE],
        "volumes": [
            v
            for v in c.volumes.list_volumes(ctx, {})
            if v.status == VolumeStatus.AVAILABLE and v.bootable and v.project_id == ctx.project_id
        ],
        "flavors": c.flavors.list_flavors(ctx, "none"),
        # An admin's listings span projects: offer what this project's servers can use.
        "networks": [
            n
            for n in c.network.list_networks(ctx)
            if not n.get("external") and (n["project_id"] == ctx.project_id or n.get("shared"))
        ],
        "keypairs": c.keypairs.list_keypairs(ctx),
        "groups": [
            g for g in c.security_groups.list_groups(ctx) if g["project_id"] == ctx.project_id
        ],
    }


def spec_of(form: FormData) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": text(form, "name"), "flavorRef": text(form, "flavor_id")}
    if text(form, "source", "image") == "volume":
        spec["block_device_mapping_v2"] = [
            {"boot_index": 0, "uuid": text(form, "volume_id"), "source_type": "volume",
             "destination_type": "volume", "delete_on_termination": False}
        ]  # fmt: skip
    else:
        spec["imageRef"] = text(form, "image_id")
    networks = [str(n) for n in form.getlist("networks") if n]
    spec["networks"] = [{"uuid": n} for n in networks] if networks else "none"
    if text(form, "key_name"):
        spec["key_name"] = text(form, "key_name")
    groups = [str(g) for g in form.getlist("security_groups") if g]
    if groups:
        spec["security_groups"] = [{"name": g} for g in groups]
    user_data = form.get("user_data")
    if isinstance(user_data, str) and user_data.strip():
        spec["user_data"] = base64.b64encode(user_data.encode()).decode()
    try:
        count = int(text(form, "count", "1") or "1")
    except ValueError:
        raise Invalid("Count must be a whole number.") from None
    if not 1 <= count <= 20:
        raise Invalid("Count must be between 1 and 20.")
    spec["min_count"] = spec["max_count"] = count
    return spec


async def launch_form(request: Request) -> Response:
    session = sessions.require(request)
    return render(request, session, "instances/launch.html", **choices(cloud(request), session.ctx))


@action("/console/instances/launch")
async def launch(request: Request, session: Session, form: FormData) -> Response:
    made = cloud(request).servers.create(session.ctx, spec_of(form), VERSION)  # type: ignore[arg-type]
    names = ", ".join(s.name for s in made)
    target = f"/console/instances/{made[0].id}" if len(made) == 1 else "/console/instances"
    return redirect(target, "ok", f"Launching {names}.")


routes = [
    Route("/instances/launch", launch_form, methods=["GET"]),
    Route("/instances/launch", launch, methods=["POST"]),
]

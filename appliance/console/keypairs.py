"""Key pairs: create (the private key is offered for download this once), import, delete."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.cloud import cloud
from appliance.console import session as sessions
from appliance.console.pages import NavItem, action, redirect, render, text
from appliance.console.session import Session
from appliance.errors import NubeError

BACK = "/console/keypairs"


async def index(request: Request) -> Response:
    session = sessions.require(request)
    found = cloud(request).keypairs.list_keypairs(session.ctx)
    return render(request, session, "keypairs.html", keypairs=found)


async def create(request: Request) -> Response:
    """A new key pair; with no public key given, Nova generates one and this page is the only place
    its private key is ever shown (it is not stored)."""
    session = sessions.require(request)
    form = await request.form()
    token = form.get(sessions.CSRF_FIELD)
    sessions.check_csrf(request, session, token if isinstance(token, str) else None)
    spec = {"name": text(form, "name")}
    if text(form, "public_key"):
        spec["public_key"] = text(form, "public_key")
    try:
        made = cloud(request).keypairs.create(session.ctx, spec)
    except NubeError as exc:
        return redirect(BACK, "error", exc.message)
    if made.private_key is None:
        return redirect(BACK, "ok", f"Key pair {made.name} imported.")
    return render(request, session, "keypair_created.html", keypair=made)


@action(BACK)
async def delete(request: Request, session: Session, form: FormData) -> Response:
    cloud(request).keypairs.delete(session.ctx, request.path_params["name"])
    return redirect(BACK, "ok", "Key pair deleted.")


nav = [NavItem("Key pairs", BACK)]
routes = [
    Route("/keypairs", index, methods=["GET"]),
    Route("/keypairs", create, methods=["POST"]),
    Route("/keypairs/{name}/delete", delete, methods=["POST"]),
]

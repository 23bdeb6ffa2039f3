"""API access: the service catalog's endpoints, and clouds.yaml / openrc files for the signed-in
user and the current project (without the password: the CLI asks for it)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from appliance.cloud import cloud
from appliance.console import session as sessions
from appliance.console.pages import NavItem, render
from appliance.context import Context


def _auth_url(request: Request) -> str:
    return cloud(request).api_base(request) + "/identity"


def clouds_yaml(ctx: Context, auth_url: str, region: str) -> str:
    q = json.dumps  # a JSON string is a valid YAML scalar
    return (
        "# Nube: save as ~/.config/openstack/clouds.yaml, then: openstack --os-cloud nube ...\n"
        "clouds:\n"
        "  nube:\n"
        "    auth:\n"
        f"      auth_url: {q(auth_url)}\n"
        f"      username: {q(ctx.user_name)}\n"
        f"      project_id: {q(ctx.project_id)}\n"
        f"      project_name: {q(ctx.project_name)}\n"
        "      user_domain_name: Default\n"
        "      project_domain_name: Default\n"
        f"    region_name: {q(region)}\n"
        "    identity_api_version: 3\n"
        "    interface: public\n"
    )


def openrc(ctx: Context, auth_url: str, region: str) -> str:
    def sh(value: str | None) -> str:
        return "'" + (value or "").replace("'", "'\"'\"'") + "'"

    return (
        "# Nube credentials for the openstack CLI: source this file; it asks for your password.\n"
        f"export OS_AUTH_URL={sh(auth_url)}\n"
        f"export OS_USERNAME={sh(ctx.user_name)}\n"
        f"export OS_PROJECT_ID={sh(ctx.project_id)}\n"
        f"export OS_PROJECT_NAME={sh(ctx.project_name)}\n"
        "export OS_USER_DOMAIN_NAME=Default\n"
        "export OS_PROJECT_DOMAIN_NAME=Default\n"
        "export OS_IDENTITY_API_VERSION=3\n"
        f"export OS_REGION_NAME={sh(region)}\n"
        "export OS_INTERFACE=public\n"
        'read -rsp "Password for $OS_USERNAME: " OS_PASSWORD && echo && export OS_PASSWORD\n'
    )


async def index(request: Request) -> Response:
    session = sessions.require(request)
    c = cloud(request)
    endpoints = [
        e
        for e in c.catalog.endpoints(
            c.api_base(request), c.s3_base(request), session.ctx.project_id
        )
        if e.interface == "public"
    ]
    return render(request, session, "access.html", endpoints=endpoints, auth_url=_auth_url(request))


async def download(request: Request) -> Response:
    session = sessions.require(request)
    region = cloud(request).config.region
    kind = request.path_params["kind"]
    if kind == "clouds.yaml":
        body, name = clouds_yaml(session.ctx, _auth_url(request), region), "clouds.yaml"
    else:
        body, name = (
            openrc(session.ctx, _auth_url(request), region),
            f"{session.ctx.project_name}-openrc.sh",
        )
    return PlainTextResponse(
        body,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


nav = [NavItem("API access", "/console/access")]
routes = [
    Route("/access", index, methods=["GET"]),
    Route("/access/{kind:str}", download, methods=["GET"]),
]

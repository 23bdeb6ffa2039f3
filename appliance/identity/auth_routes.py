"""Keystone v3 HTTP endpoints for tokens, /v3/auth/*, application credentials and EC2 credentials."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from appliance.cloud import cloud
from appliance.errors import Forbidden, NotFound, Unauthorized
from appliance.identity import wire
from appliance.identity.models import Token
from appliance.identity.routes import _listing, identity_base, no_content, ok
from appliance.web.body import json_body, member
from appliance.web.middleware import caller


def _token_response(request: Request, token: Token, status: int) -> Response:
    c = cloud(request)
    catalog = None if "nocatalog" in request.query_params else c.catalog
    body = wire.token_json(token, catalog, c.api_base(request), c.s3_base(request))
    response = JSONResponse(body, status_code=status, headers={"X-Subject-Token": token.id})
    if request.method == "HEAD":
        return Response(status_code=status, headers={"X-Subject-Token": token.id})
    return response


async def tokens_issue(request: Request) -> Response:
    token = await cloud(request).auth.authenticate(await json_body(request))
    return _token_response(request, token, 201)


def _subject(request: Request) -> Token:
    """The X-Subject-Token being checked; the caller must own it or be admin (Keystone policy)."""
    ctx = caller(request)
    subject = request.headers.get("x-subject-token")
    if not subject:
        raise NotFound("Could not find token: the X-Subject-Token header is missing.")
    try:
        token = cloud(request).auth.validate(subject)
    except Unauthorized as exc:
        raise NotFound(f"Could not find token: {exc.message}") from None
    if not ctx.is_admin and token.user.id != ctx.user_id:
        raise Forbidden("You are not authorized to act on another user's token.")
    return token


async def tokens_validate(request: Request) -> Response:
    return _token_response(request, _subject(request), 200)


async def tokens_revoke(request: Request) -> Response:
    cloud(request).auth.revoke(_subject(request))
    return no_content()


def _current_token(request: Request) -> Token:
    caller(request)
    return cloud(request).auth.validate(request.headers["x-auth-token"])


async def auth_catalog(request: Request) -> Response:
    token = _current_token(request)
    c = cloud(request)
    if not token.scoped:
        raise Forbidden("The catalog requires a scoped token.")
    project_id = token.project.id if token.project else None
    endpoints = c.catalog.endpoints(c.api_base(request), c.s3_base(request), project_id)
    return ok({"catalog": wire.catalog_json(endpoints), "links": {"self": str(request.url)}})


async def auth_projects(request: Request) -> Response:
    ctx = caller(request)
    found = cloud(request).identity.projects_of_user(ctx, ctx.user_id)
    base = identity_base(request)
    return _listing(request, "projects", [wire.project_json(p, base) for p in found])


async def auth_domains(request: Request) -> Response:
    ctx = caller(request)
    identity = cloud(request).identity
    found = [
        d for d in identity.list_domains(ctx) if identity.roles_on(ctx.user_id, "domain", d.id)
    ]
    base = identity_base(request)
    return _listing(request, "domains", [wire.domain_json(d, base) for d in found])


async def auth_system(request: Request) -> Response:
    ctx = caller(request)
    held = cloud(request).identity.roles_on(ctx.user_id, "system", "all")
    return ok({"system": [{"all": True}] if held else [], "links": {"self": str(request.url)}})


# -- application credentials -------------------------------------------------------------------


async def app_creds_index(request: Request) -> Response:
    found = cloud(request).credentials.list_app_credentials(
        caller(request), request.path_params["user_id"], request.query_params.get("name")
    )
    base = identity_base(request)
    return _listing(
        request, "application_credentials", [wire.app_credential_json(c, base) for c in found]
    )


async def app_creds_create(request: Request) -> Response:
    spec = member(await json_body(request), "application_credential")
    cred = await cloud(request).credentials.create_app_credential(
        caller(request), request.path_params["user_id"], spec
    )
    return ok(
        {"application_credential": wire.app_credential_json(cred, identity_base(request))}, 201
    )


async def app_creds_show(request: Request) -> Response:
    cred = cloud(request).credentials.get_app_credential(
        caller(request), request.path_params["user_id"], request.path_params["cred_id"]
    )
    return ok({"application_credential": wire.app_credential_json(cred, identity_base(request))})


async def app_creds_delete(request: Request) -> Response:
    cloud(request).credentials.delete_app_credential(
        caller(request), request.path_params["user_id"], request.path_params["cred_id"]
    )
    return no_content()


# -- EC2 credentials (the S3 keys) -------------------------------------------------------------


async def ec2_index(request: Request) -> Response:
    found = cloud(request).credentials.list_ec2(caller(request), request.path_params["user_id"])
    base = identity_base(request)
    return _listing(request, "credentials", [wire.ec2_json(c, base) for c in found])


async def ec2_create(request: Request) -> Response:
    body = await json_body(request)
    cred = cloud(request).credentials.create_ec2(
        caller(request), request.path_params["user_id"], body.get("tenant_id")
    )
    return ok({"credential": wire.ec2_json(cred, identity_base(request))}, 201)


async def ec2_show(request: Request) -> Response:
    cred = cloud(request).credentials.get_ec2(
        caller(request), request.path_params["user_id"], request.path_params["access"]
    )
    return ok({"credential": wire.ec2_json(cred, identity_base(request))})


async def ec2_delete(request: Request) -> Response:
    cloud(request).credentials.delete_ec2(
        caller(request), request.path_params["user_id"], request.path_params["access"]
    )
    return no_content()


async def credentials_index(request: Request) -> Response:
    q = request.query_params
    found = cloud(request).credentials.list_credentials(
        caller(request), q.get("user_id"), q.get("type")
    )
    base = identity_base(request)
    return _listing(request, "credentials", [wire.credential_json(r, base) for r in found])


async def credentials_show(request: Request) -> Response:
    row = cloud(request).credentials.get_credential(caller(request), request.path_params["cred_id"])
    return ok({"credential": wire.credential_json(row, identity_base(request))})


async def credentials_delete(request: Request) -> Response:
    cloud(request).credentials.delete_credential(caller(request), request.path_params["cred_id"])
    return no_content()


_APP = "/v3/users/{user_id}/application_credentials"
_EC2 = "/v3/users/{user_id}/credentials/OS-EC2"

routes: list[BaseRoute] = [
    Route("/v3/auth/tokens", tokens_issue, methods=["POST"]),
    Route("/v3/auth/tokens", tokens_validate, methods=["GET", "HEAD"]),
    Route("/v3/auth/tokens", tokens_revoke, methods=["DELETE"]),
    Route("/v3/auth/catalog", auth_catalog, methods=["GET"]),
    Route("/v3/auth/projects", auth_projects, methods=["GET"]),
    Route("/v3/auth/domains", auth_domains, methods=["GET"]),
    Route("/v3/auth/system", auth_system, methods=["GET"]),
    Route(_APP, app_creds_index, methods=["GET"]),
    Route(_APP, app_creds_create, methods=["POST"]),
    Route(_APP + "/{cred_id}", app_creds_show, methods=["GET"]),
    Route(_APP + "/{cred_id}", app_creds_delete, methods=["DELETE"]),
    Route(_EC2, ec2_index, methods=["GET"]),
    Route(_EC2, ec2_create, methods=["POST"]),
    Route(_EC2 + "/{access}", ec2_show, methods=["GET"]),
    Route(_EC2 + "/{access}", ec2_delete, methods=["DELETE"]),
    Route("/v3/credentials", credentials_index, methods=["GET"]),
    Route("/v3/credentials/{cred_id}", credentials_show, methods=["GET"]),
    Route("/v3/credentials/{cred_id}", credentials_delete, methods=["DELETE"]),
]

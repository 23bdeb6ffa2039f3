"""The console's session: Keystone tokens in an HttpOnly cookie, and the CSRF token derived from them.

Login issues an unscoped token (the session's root) and rescopes it to a project; every project token
of the session is a rescoping of that root, so its audit chain holds the root's audit id and revoking
the root at logout revokes them all (`Auth._resolve` refuses any token whose chain holds a revoked id).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import Response

from appliance.cloud import Cloud, cloud
from appliance.context import Context
from appliance.errors import Forbidden, NubeError, Unauthorized
from appliance.identity.models import Project
from appliance.web.middleware import request_id

COOKIE = "nube_session"
LOGIN_CSRF_COOKIE = "nube_login_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """No live session: the console answers with the login page."""


@dataclass(frozen=True, slots=True)
class Session:
    root: str  # the unscoped login token; revoking it ends the session
    token: str  # the project-scoped token every page acts with
    ctx: Context
    projects: tuple[Project, ...]

    @property
    def csrf(self) -> str:
        return csrf_for(self.root)


def csrf_for(secret: str) -> str:
    """The form token: only a page that could read the HttpOnly session can know it."""
    return hmac.new(secret.encode(), b"nube-console-csrf", hashlib.sha256).hexdigest()


def _cookie_value(root: str, token: str) -> str:
    return f"{root}|{token}"


def load(conn: HTTPConnection) -> Session | None:
    """The caller's session from the cookie, or None if absent, expired or revoked."""
    raw = conn.cookies.get(COOKIE, "")
    root, _, token = raw.partition("|")
    if not root or not token:
        return None
    c = cloud(conn)
    try:
        c.auth.validate(root)
        ctx = c.auth.context(token, request_id(conn))  # type: ignore[arg-type]
    except NubeError:
        return None
    projects = tuple(c.identity.projects_of_user(ctx, ctx.user_id))
    return Session(root, token, ctx, projects)


def require(conn: HTTPConnection) -> Session:
    session = load(conn)
    if session is None:
        raise LoginRequired()
    return session


def set_cookie(conn: HTTPConnection, response: Response, root: str, token: str) -> None:
    response.set_cookie(
        COOKIE,
        _cookie_value(root, token),
        httponly=True,
        samesite="lax",
        secure=conn.url.scheme == "https",
        path="/",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")


async def login(c: Cloud, username: str, password: str) -> tuple[str, str]:
    """Password login in domain Default: (root token, token scoped to the user's first project)."""
    root = await c.auth.authenticate(
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": username,
                            "domain": {"id": "default"},
                            "password": password,
                        }
                    },
                },
                "scope": "unscoped",
            }
        }
    )
    ctx = c.auth.context(root.id)
    projects = c.identity.projects_of_user(ctx, ctx.user_id)
    default = root.user.default_project_id
    chosen = next((p for p in projects if p.id == default), projects[0] if projects else None)
    if chosen is None:
        c.auth.revoke(root)
        raise Forbidden("This user has no role on any project, so there is nothing to show.")
    return root.id, await rescope(c, root.id, chosen.id)


async def rescope(c: Cloud, root: str, project_id: str) -> str:
    body: dict[str, Any] = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": root}},
            "scope": {"project": {"id": project_id}},
        }
    }
    return (await c.auth.authenticate(body)).id


def logout(c: Cloud, session: Session) -> None:
    c.auth.revoke(c.auth.validate(session.root))


def check_csrf(conn: HTTPConnection, session: Session | None, submitted: str | None) -> None:
    """Refuse a state-changing request that did not come from one of our pages."""
    origin = conn.headers.get("origin")
    if origin and origin != "null":
        expected = f"{conn.url.scheme}://{conn.headers.get('host', '')}"
        if origin != expected:
            raise Forbidden("Cross-site request refused (Origin does not match).")
    if session is not None:
        expected_token = session.csrf
    else:
        expected_token = conn.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected_token or not submitted or not hmac.compare_digest(expected_token, submitted):
        raise Forbidden("The form's security token is missing or stale; reload the page and retry.")


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


__all__ = ["COOKIE", "LoginRequired", "Session", "Unauthorized"]

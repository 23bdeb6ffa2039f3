"""The web console's mount table: one module per area; a new service adds its module to AREAS.

Pages call the same service layer as the APIs, with a Context from the session's token, so a page shows
and does exactly what the user's roles allow there.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from appliance.console import (
    access,
    admin,
    auth,
    images,
    instances,
    keypairs,
    networks,
    objects,
    overview,
    security,
    volumes,
)
from appliance.console import session as sessions
from appliance.console.history import History
from appliance.console.pages import NavItem, redirect, render
from appliance.errors import Forbidden, NotFound, NubeError

HERE = Path(__file__).parent
NOVNC_DIR = Path("/usr/share/novnc")  # Debian's `novnc` package

# Each area: its navigation entries and its routes. Order is the navigation's order.
AREAS = (overview, instances, images, volumes, networks, security, keypairs, objects, access, admin)

STATUS = {Forbidden: 403, NotFound: 404}


class CachedStatic(StaticFiles):
    """Static files with a cache lifetime (their URLs carry the version, so a release busts them)."""

    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response


async def _login_required(request: Request, exc: Exception) -> Response:
    if request.method == "GET":
        return RedirectResponse(f"/console/login?next={request.url.path}", status_code=303)
    response = redirect("/console/login", "error", "Your session has ended; log in again.")
    sessions.clear_cookie(response)
    return response


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NubeError)
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
    session = sessions.load(request)
    if session is None:
        return PlainTextResponse(exc.message, status_code=status)
    return render(request, session, "error.html", status, message=exc.message, status=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    session = sessions.load(request)
    if session is None or exc.status_code != 404:
        return PlainTextResponse(exc.detail, status_code=exc.status_code)
    return render(request, session, "error.html", 404, message="No such page.", status=404)


def app() -> Starlette:
    routes: list[BaseRoute] = [*auth.routes]
    for area in AREAS:
        routes.extend(area.routes)
    routes.append(Mount("/static", app=CachedStatic(directory=HERE / "static"), name="static"))
    console = Starlette(
        routes=routes,
        exception_handlers={
            sessions.LoginRequired: _login_required,
            NubeError: _domain_error,
            HTTPException: _http_error,
        },
    )
    console.state.nav = [item for area in AREAS for item in area.nav]
    console.state.history = History()  # the overview's usage samples
    return console


def novnc() -> StaticFiles:
    """noVNC's client, as packaged by Debian (its files link into /usr/share/javascript)."""
    return CachedStatic(directory=NOVNC_DIR, check_dir=False, follow_symlink=True)


def wants_console(scope: Scope) -> bool:
    """A browser asking for `/` gets the console; an API client asking for JSON, the API index."""
    accept = dict(scope.get("headers") or []).get(b"accept", b"").decode()
    return "text/html" in accept or "application/json" not in accept


__all__ = ["AREAS", "NavItem", "app", "novnc", "wants_console"]

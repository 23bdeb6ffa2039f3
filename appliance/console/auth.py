"""Login, logout and the project switcher."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.cloud import cloud
from appliance.console import session as sessions
from appliance.console.pages import redirect, templates, text
from appliance.errors import Forbidden, NubeError, Unauthorized


def _safe_next(value: str) -> str:
    """Only a path of this console: never an absolute URL (no open redirect)."""
    if value.startswith("/console/") and not value.startswith("//"):
        return value
    return "/console/"


def _login_page(request: Request, error: str | None = None, status_code: int = 200) -> Response:
    token = request.cookies.get(sessions.LOGIN_CSRF_COOKIE) or sessions.new_login_csrf()
    response = templates.TemplateResponse(
        request,
        "login.html",
        {
            "csrf": token,
            "error": error,
            "next": _safe_next(request.query_params.get("next", "/console/")),
        },
        status_code=status_code,
    )
    response.set_cookie(
        sessions.LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/console/"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def login_form(request: Request) -> Response:
    if sessions.load(request) is not None:
        return redirect("/console/")
    return _login_page(request)


async def login_submit(request: Request) -> Response:
    form = await request.form()
    token = form.get(sessions.CSRF_FIELD)
    try:
        sessions.check_csrf(request, None, token if isinstance(token, str) else None)
    except Forbidden as exc:
        return _login_page(request, exc.message, 403)
    try:
        root, scoped = await sessions.login(
            cloud(request), text(form, "username"), str(form.get("password") or "")
        )
    except Unauthorized:
        return _login_page(request, "Wrong user name or password.", 401)
    except NubeError as exc:
        return _login_page(request, exc.message, 403)
    response = redirect(_safe_next(text(form, "next", "/console/")))
    sessions.set_cookie(request, response, root, scoped)
    response.delete_cookie(sessions.LOGIN_CSRF_COOKIE, path="/console/")
    return response


async def logout(request: Request) -> Response:
    session = sessions.load(request)
    if session is not None:
        form = await request.form()
        token = form.get(sessions.CSRF_FIELD)
        sessions.check_csrf(request, session, token if isinstance(token, str) else None)
        sessions.logout(cloud(request), session)
    response = redirect("/console/login", "info", "You are logged out.")
    sessions.clear_cookie(response)
    return response


async def switch_project(request: Request) -> Response:
    session = sessions.require(request)
    form: FormData = await request.form()
    token = form.get(sessions.CSRF_FIELD)
    sessions.check_csrf(request, session, token if isinstance(token, str) else None)
    project_id = text(form, "project_id")
    if project_id not in {p.id for p in session.projects}:
        return redirect("/console/", "error", "You hold no role on that project.")
    scoped = await sessions.rescope(cloud(request), session.root, project_id)
    name = next(p.name for p in session.projects if p.id == project_id)
    # Back to the same section, not the same resource: it belongs to the project left behind.
    section = _safe_next(text(form, "next", "/console/")).split("/")[2]
    response = redirect(f"/console/{section}", "ok", f"Project {name}.")
    sessions.set_cookie(request, response, session.root, scoped)
    return response


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/project", switch_project, methods=["POST"]),
]

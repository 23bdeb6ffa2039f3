"""What every console page shares: templates, the layout's navigation, flash messages, form actions."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from appliance import __version__
from appliance.cloud import Cloud, cloud
from appliance.console import session as sessions
from appliance.console.session import Session
from appliance.errors import NubeError

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["version"] = __version__
templates.env.filters["b64"] = lambda text: base64.b64encode(text.encode()).decode()
templates.env.filters["timestamp"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
FLASH_COOKIE = "nube_flash"
PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str
    admin_only: bool = False


def render(
    request: Request, session: Session, template: str, status_code: int = 200, **values: Any
) -> Response:
    flash = _read_flash(request)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "ctx": session.ctx,
            "csrf": session.csrf,
            "nav": [n for n in request.app.state.nav if session.ctx.is_admin or not n.admin_only],
            "flash": flash,
            **values,
        },
        status_code=status_code,
    )
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {"kind": str(value.get("kind", "info")), "text": str(value.get("text", ""))}


def redirect(to: str, kind: str | None = None, text: str | None = None) -> RedirectResponse:
    """303 to a page, with a one-shot message shown there (success or the API's error)."""
    response = RedirectResponse(to, status_code=303)
    if kind and text:
        set_flash(response, kind, text)
    return response


def set_flash(response: Response, kind: str, text: str) -> None:
    payload = base64.urlsafe_b64encode(json.dumps({"kind": kind, "text": text}).encode())
    response.set_cookie(FLASH_COOKIE, payload.decode(), httponly=True, samesite="lax", path="/")


Handler = Callable[[Request, Session, FormData], Awaitable[Response]]


def action(back: str | Callable[[Request], str]) -> Callable[[Handler], Callable[[Request], Any]]:
    """A POST endpoint: session and CSRF checked; a domain error goes back to the page as a message."""

    def wrap(handler: Handler) -> Callable[[Request], Any]:
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            session = sessions.require(request)
            form = await request.form()
            token = form.get(sessions.CSRF_FIELD)
            sessions.check_csrf(request, session, token if isinstance(token, str) else None)
            target = back(request) if callable(back) else back
            try:
                return await handler(request, session, form)
            except NubeError as exc:
                return redirect(target, "error", exc.message)

        return endpoint

    return wrap


def the_cloud(request: Request) -> Cloud:
    return cloud(request)


def text(form: FormData, key: str, default: str = "") -> str:
    value = form.get(key, default)
    return value.strip() if isinstance(value, str) else default


def page_numbers(request: Request, total: int) -> tuple[int, dict[str, Any]]:
    """The offset of the asked-for page (?page=N, 50 a page) and what the pager shows."""
    try:
        number = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        number = 1
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    number = min(number, pages)
    query = {k: v for k, v in request.query_params.items() if k != "page"}

    def href(n: int) -> str:
        return f"{request.url.path}?{urlencode({**query, 'page': n})}"

    info = {
        "number": number,
        "pages": pages,
        "total": total,
        "prev": href(number - 1) if number > 1 else None,
        "next": href(number + 1) if number < pages else None,
    }
    return (number - 1) * PAGE_SIZE, info


def page_of(request: Request, items: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """A page of a list the service hands over whole (volumes, images: tens, not thousands)."""
    start, info = page_numbers(request, len(items))
    return items[start : start + PAGE_SIZE], info

"""Error rendering, once per API dialect: each OpenStack API (and S3) shapes its errors its own way.

Keystone: {"error": {"code", "title", "message"}} (+ WWW-Authenticate on 401)
Nova/Cinder: {"itemNotFound": {"code", "message"}}  (nova/api/openstack/wsgi.py::Fault)
Neutron: {"NeutronError": {"type", "message", "detail"}}
Glance/Swift: a short plain-text body, as webob renders it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from appliance import errors

log = logging.getLogger("nube.http")

# The status an error class means in every dialect; a dialect may override a class (OverQuota differs).
STATUS: dict[type[errors.NubeError], int] = {
    errors.Invalid: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.NotAcceptable: 406,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.UnsupportedMedia: 415,
    errors.OverQuota: 413,
}

Renderer = Callable[[Request, int, str, str], Response]

NOVA_FAULTS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    406: "notAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def render_keystone(request: Request, status: int, message: str, kind: str) -> Response:
    headers = {}
    if status == 401:
        # keystone/server/flask/application.py: clients find the auth URL here.
        base = str(request.base_url).rstrip("/")
        headers["WWW-Authenticate"] = f'Keystone uri="{base}/identity"'
    body = {"error": {"code": status, "title": _title(status), "message": message}}
    return _json(status, body, headers)


def render_nova(request: Request, status: int, message: str, kind: str) -> Response:
    return _json(
        status, {NOVA_FAULTS.get(status, "computeFault"): {"code": status, "message": message}}
    )


def render_neutron(request: Request, status: int, message: str, kind: str) -> Response:
    return _json(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


def render_plain(request: Request, status: int, message: str, kind: str) -> Response:
    return Response(f"{status} {_title(status)}\n\n{message}\n", status, media_type="text/plain")


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    render: Renderer
    overrides: Mapping[type[errors.NubeError], int] = field(default_factory=dict)

    def status_of(self, exc: errors.NubeError) -> int:
        for cls in type(exc).__mro__:
            if cls in self.overrides:
                return self.overrides[cls]
            if cls in STATUS:
                return STATUS[cls]
        return 500

    def error_response(self, request: Request, exc: errors.NubeError) -> Response:
        kind = getattr(exc, "kind", None) or type(exc).__name__
        return self.render(request, self.status_of(exc), exc.message, kind)

    def exception_handlers(self) -> dict[Any, Callable[..., Any]]:
        """Handlers for a mounted API app: domain errors, HTTP errors (404 route, 405, 413), crashes."""

        async def on_domain_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, errors.NubeError)
            return self.error_response(request, exc)

        async def on_http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            message = (
                exc.detail
                if exc.detail != _title(exc.status_code)
                else _DEFAULTS.get(exc.status_code, exc.detail)
            )
            response = self.render(request, exc.status_code, message, _title(exc.status_code))
            for key, value in (exc.headers or {}).items():
                response.headers[key] = value
            return response

        async def on_crash(request: Request, exc: Exception) -> Response:
            log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
            return self.render(
                request,
                500,
                "An unexpected error prevented the server from fulfilling your request.",
                "InternalServerError",
            )

        return {
            errors.NubeError: on_domain_error,
            HTTPException: on_http_error,
            Exception: on_crash,
        }


_DEFAULTS = {
    404: "The resource could not be found.",
    405: "The method is not allowed for the requested URL.",
    413: "Request Entity Too Large",
}

KEYSTONE = Dialect("keystone", render_keystone)
NOVA = Dialect("nova", render_nova, {errors.OverQuota: 403})
CINDER = Dialect("cinder", render_nova)
NEUTRON = Dialect("neutron", render_neutron, {errors.OverQuota: 409})
GLANCE = Dialect("glance", render_plain)
SWIFT = Dialect("swift", render_plain)

DIALECTS = (KEYSTONE, NOVA, CINDER, NEUTRON, GLANCE, SWIFT)

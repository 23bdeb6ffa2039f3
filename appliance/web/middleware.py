"""The outermost layer: a request id on every response, the caller's context, one log line a request."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.context import Context
from appliance.errors import NubeError, Unauthorized

log = logging.getLogger("nube.http")

REQUEST_ID = "nube.request_id"
CONTEXT = "nube.context"

# Resolves a token to its caller; raises Unauthorized for a bad or revoked one.
TokenResolver = Callable[[str, str], Context]


class RequestMiddleware:
    """Assigns `req-<uuid>`, resolves X-Auth-Token into a Context, logs the request when it ends.

    `resolver` is looked up per request (the services exist only once the lifespan has started).
    The id goes back in `id_header` (the S3 port names it as S3 does).
    """

    def __init__(
        self,
        app: ASGIApp,
        resolver: Callable[[Scope], TokenResolver | None],
        id_header: str = "x-openstack-request-id",
    ) -> None:
        self.app = app
        self.resolver = resolver
        self.id_header = id_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        request_id = f"req-{uuid.uuid4()}"
        scope[REQUEST_ID] = request_id
        token = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-auth-token"), "")
        if token:
            resolve = self.resolver(scope)
            if resolve is not None:
                try:
                    scope[CONTEXT] = resolve(token, request_id)
                except NubeError as exc:
                    scope[CONTEXT] = exc
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[self.id_header] = request_id
                if path.startswith("/compute"):
                    headers["x-compute-request-id"] = request_id  # Nova sends both
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if status == 0 and scope["type"] == "http":
                # Starlette's ServerErrorMiddleware sits outside us and would answer without the id.
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, send_with_id)
            raise
        finally:
            ctx = scope.get(CONTEXT)
            who = f" user={ctx.user_id}" if isinstance(ctx, Context) else ""
            log.info(
                "%s %s %s %.1fms %s%s",
                scope.get("method", "WS"),
                path,
                status or "-",
                (time.perf_counter() - started) * 1000,
                request_id,
                who,
            )


def request_id(request: Request) -> str:
    return request.scope.get(REQUEST_ID, "")


def caller(request: Request) -> Context:
    """The authenticated caller, or Unauthorized (401) if the request carried no valid token."""
    ctx = request.scope.get(CONTEXT)
    if isinstance(ctx, Context):
        return ctx
    if isinstance(ctx, NubeError):
        raise ctx
    raise Unauthorized("The request you have made requires authentication.")

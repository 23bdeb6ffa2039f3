"""RequestMiddleware: a request id on every response, the caller's context, one log line a request."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Scope
from starlette.websockets import WebSocket

from appliance.context import Context
from appliance.errors import Unauthorized
from appliance.web.dialects import KEYSTONE
from appliance.web.middleware import (
    REQUEST_ID,
    RequestMiddleware,
    TokenResolver,
    caller,
    request_id,
)

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; plain httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

REQUEST_ID_FORMAT = re.compile(
    r"^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)


class Tokens:
    """A token store standing in for Auth: the seam RequestMiddleware is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def resolve(self, token: str, req_id: str) -> Context:
        self.calls.append((token, req_id))
        if token != "good":
            raise Unauthorized("The token has expired.")
        return Context(
            user_id="u-1", user_name="alice", user_domain_id="default", roles=frozenset({"member"})
        )


async def whoami(request: Request) -> Response:
    ctx = caller(request)
    return JSONResponse({"user": ctx.user_id, "request_id": ctx.request_id})


async def own_id(request: Request) -> Response:
    return JSONResponse({"request_id": request_id(request)})


async def crash(request: Request) -> Response:
    raise RuntimeError("boom")


async def ws_echo_id(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.scope[REQUEST_ID])
    await websocket.close()


def client(tokens: Tokens | None = None, *, services_ready: bool = True) -> TestClient:
    store = tokens or Tokens()

    def resolver(scope: Scope) -> TokenResolver | None:
        return store.resolve if services_ready else None

    app = Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/id", own_id),
            Route("/crash", crash),
            WebSocketRoute("/ws", ws_echo_id),
        ],
        middleware=[Middleware(RequestMiddleware, resolver=resolver)],
        # Without the dialect's crash handler, so a crash escapes to the middleware as in the root app.
        exception_handlers={
            k: v for k, v in KEYSTONE.exception_handlers().items() if k is not Exception
        },
    )
    return TestClient(app, raise_server_exceptions=False)


def http_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "nube.http"]


# -- request id ----------------------------------------------------------------------------------


def test_response_carries_a_request_id_of_the_form_req_uuid4() -> None:
    response = client().get("/id")
    assert REQUEST_ID_FORMAT.match(response.headers["x-openstack-request-id"])


def test_each_request_gets_its_own_request_id() -> None:
    c = client()
    first = c.get("/id").headers["x-openstack-request-id"]
    second = c.get("/id").headers["x-openstack-request-id"]
    assert first != second


def test_route_sees_the_request_id_the_response_carries() -> None:
    response = client().get("/id")
    assert response.json()["request_id"] == response.headers["x-openstack-request-id"]


def test_unknown_route_answer_carries_a_request_id() -> None:
    response = client().get("/nowhere")
    assert response.status_code == 404
    assert REQUEST_ID_FORMAT.match(response.headers["x-openstack-request-id"])


def test_error_answer_carries_a_request_id() -> None:
    response = client().get("/whoami")
    assert response.status_code == 401
    assert REQUEST_ID_FORMAT.match(response.headers["x-openstack-request-id"])


def test_unhandled_crash_answers_500_with_a_request_id() -> None:
    response = client().get("/crash")
    assert response.status_code == 500
    assert REQUEST_ID_FORMAT.match(response.headers["x-openstack-request-id"])


def test_unhandled_crash_still_reaches_the_server() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        TestClient(client().app).get("/crash")


def test_websocket_connection_gets_a_request_id() -> None:
    with client().websocket_connect("/ws") as ws:
        assert REQUEST_ID_FORMAT.match(ws.receive_text())


def test_request_id_is_empty_outside_the_middleware() -> None:
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    assert request_id(Request(scope)) == ""


# -- caller --------------------------------------------------------------------------------------


def test_valid_token_becomes_the_callers_context() -> None:
    response = client().get("/whoami", headers={"X-Auth-Token": "good"})
    assert response.status_code == 200
    assert response.json()["user"] == "u-1"


def test_resolver_is_given_the_request_id() -> None:
    tokens = Tokens()
    response = client(tokens).get("/whoami", headers={"X-Auth-Token": "good"})
    assert tokens.calls == [("good", response.headers["x-openstack-request-id"])]


def test_request_without_a_token_is_unauthorized() -> None:
    response = client().get("/whoami")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == (
        "The request you have made requires authentication."
    )


def test_refused_token_answers_with_the_resolvers_reason() -> None:
    response = client().get("/whoami", headers={"X-Auth-Token": "stale"})
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "The token has expired."


def test_refused_token_does_not_fail_routes_that_do_not_ask_for_a_caller() -> None:
    assert client().get("/id", headers={"X-Auth-Token": "stale"}).status_code == 200


def test_request_without_a_token_does_not_call_the_resolver() -> None:
    tokens = Tokens()
    client(tokens).get("/whoami")
    assert tokens.calls == []


def test_token_before_services_are_ready_is_unauthorized() -> None:
    response = client(services_ready=False).get("/whoami", headers={"X-Auth-Token": "good"})
    assert response.status_code == 401


# -- the log line --------------------------------------------------------------------------------


def test_one_log_line_per_request_names_method_path_status_and_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="nube.http")
    response = client().get("/id?secret=1")
    [line] = http_log(caplog)
    rid = response.headers["x-openstack-request-id"]
    assert re.fullmatch(rf"GET /id 200 \d+\.\dms {rid}", line)


def test_log_line_names_the_authenticated_user(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nube.http")
    client().get("/whoami", headers={"X-Auth-Token": "good"})
    [line] = http_log(caplog)
    assert line.endswith(" user=u-1")


def test_log_line_names_no_user_for_a_refused_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nube.http")
    client().get("/whoami", headers={"X-Auth-Token": "stale"})
    [line] = http_log(caplog)
    assert line.startswith("GET /whoami 401 ")
    assert "user=" not in line


def test_log_line_of_a_crash_records_status_500(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nube.http")
    client().get("/crash")
    [line] = http_log(caplog)
    assert line.startswith("GET /crash 500 ")


# -- lifespan ------------------------------------------------------------------------------------


def test_lifespan_events_pass_through_to_the_app() -> None:
    started: list[bool] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started.append(True)
        yield

    app = Starlette(
        middleware=[Middleware(RequestMiddleware, resolver=lambda scope: None)], lifespan=lifespan
    )
    with TestClient(app):
        pass
    assert started == [True]

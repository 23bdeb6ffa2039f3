"""Error rendering per API dialect, through a real ASGI app with the dialect's exception handlers."""

from __future__ import annotations

import logging
import warnings

import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException, StarletteDeprecationWarning
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance import errors
from appliance.web.body import json_body
from appliance.web.dialects import (
    CINDER,
    GLANCE,
    KEYSTONE,
    NEUTRON,
    NOVA,
    SWIFT,
    Dialect,
)

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; plain httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


class NetworkNotFound(errors.NotFound):
    """A service-specific subclass, as Neutron's exception names are."""


class ProjectQuotaFull(errors.OverQuota):
    pass


def _raiser(exc: Exception):
    async def endpoint(request: Request) -> Response:
        raise exc

    return endpoint


async def echo_json(request: Request) -> Response:
    return JSONResponse(await json_body(request))


async def crash(request: Request) -> Response:
    raise RuntimeError("secret internals /etc/shadow")


def _kind_error() -> errors.NotFound:
    exc = errors.NotFound("Network abc could not be found.")
    exc.kind = "NetworkNotFound"  # type: ignore[attr-defined]
    return exc


def client(dialect: Dialect) -> TestClient:
    app = Starlette(
        routes=[
            Route("/invalid", _raiser(errors.Invalid("name is too long")), methods=["GET"]),
            Route("/unauthorized", _raiser(errors.Unauthorized("The token expired."))),
            Route("/missing", _raiser(errors.NotFound("Server abc could not be found."))),
            Route("/network", _raiser(NetworkNotFound("Network abc could not be found."))),
            Route("/kind", _raiser(_kind_error())),
            Route("/conflict", _raiser(errors.Conflict("Name taken."))),
            Route("/quota", _raiser(errors.OverQuota("Quota exceeded for cores."))),
            Route("/project-quota", _raiser(ProjectQuotaFull("Quota exceeded for ram."))),
            Route("/teapot", _raiser(HTTPException(400, "Custom detail."))),
            Route("/crash", crash),
            Route("/json", echo_json, methods=["POST"]),
        ],
        exception_handlers=dialect.exception_handlers(),
    )
    return TestClient(app, raise_server_exceptions=False)


# -- Keystone ------------------------------------------------------------------------------------


def test_keystone_error_body_has_code_title_and_message() -> None:
    response = client(KEYSTONE).get("/missing")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": 404, "title": "Not Found", "message": "Server abc could not be found."}
    }


def test_keystone_401_points_clients_at_the_identity_url() -> None:
    response = client(KEYSTONE).get("/unauthorized")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Keystone uri="http://testserver/identity"'


def test_keystone_errors_other_than_401_carry_no_www_authenticate() -> None:
    response = client(KEYSTONE).get("/invalid")
    assert response.status_code == 400
    assert "www-authenticate" not in response.headers


# -- Nova and Cinder -----------------------------------------------------------------------------


def test_nova_not_found_is_an_item_not_found_fault() -> None:
    response = client(NOVA).get("/missing")
    assert response.status_code == 404
    assert response.json() == {
        "itemNotFound": {"code": 404, "message": "Server abc could not be found."}
    }


def test_nova_conflict_is_a_conflicting_request_fault() -> None:
    response = client(NOVA).get("/conflict")
    assert response.json() == {"conflictingRequest": {"code": 409, "message": "Name taken."}}


def test_nova_over_quota_answers_403_forbidden() -> None:
    response = client(NOVA).get("/quota")
    assert response.status_code == 403
    assert list(response.json()) == ["forbidden"]


def test_nova_override_applies_to_subclasses_of_the_overridden_class() -> None:
    assert client(NOVA).get("/project-quota").status_code == 403


def test_cinder_over_quota_answers_413_over_limit() -> None:
    response = client(CINDER).get("/quota")
    assert response.status_code == 413
    assert response.json() == {"overLimit": {"code": 413, "message": "Quota exceeded for cores."}}


def test_nova_json_responses_are_labelled_application_json() -> None:
    assert client(NOVA).get("/missing").headers["content-type"] == "application/json"


# -- Neutron -------------------------------------------------------------------------------------


def test_neutron_error_names_the_exception_class_as_its_type() -> None:
    response = client(NEUTRON).get("/network")
    assert response.status_code == 404
    assert response.json() == {
        "NeutronError": {
            "type": "NetworkNotFound",
            "message": "Network abc could not be found.",
            "detail": "",
        }
    }


def test_neutron_error_type_prefers_an_explicit_kind_attribute() -> None:
    response = client(NEUTRON).get("/kind")
    assert response.json()["NeutronError"]["type"] == "NetworkNotFound"


def test_neutron_over_quota_answers_409() -> None:
    assert client(NEUTRON).get("/quota").status_code == 409


# -- Glance and Swift ----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", [GLANCE, SWIFT], ids=lambda d: d.name)
def test_plain_dialects_answer_status_line_and_message_as_text(dialect: Dialect) -> None:
    response = client(dialect).get("/missing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "404 Not Found\n\nServer abc could not be found.\n"


# -- HTTP errors and crashes ---------------------------------------------------------------------


def test_unknown_route_answers_404_in_the_dialect_shape() -> None:
    response = client(NOVA).get("/no/such/thing")
    assert response.status_code == 404
    assert response.json() == {
        "itemNotFound": {"code": 404, "message": "The resource could not be found."}
    }


def test_wrong_method_answers_405_with_an_allow_header() -> None:
    response = client(KEYSTONE).delete("/invalid")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_http_exception_detail_is_kept_as_the_message() -> None:
    response = client(NOVA).get("/teapot")
    assert response.json() == {"badRequest": {"code": 400, "message": "Custom detail."}}


def test_body_over_the_json_limit_answers_413_in_the_dialect_shape() -> None:
    response = client(KEYSTONE).post("/json", content=b"{" + b" " * 200_000 + b"}")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == 413


def test_chunked_body_over_the_json_limit_answers_413_without_content_length() -> None:
    def chunks():  # no Content-Length: the limit is counted while reading
        yield b"{"
        for _ in range(200):
            yield b" " * 1000
        yield b"}"

    response = client(NOVA).post("/json", content=chunks())
    assert response.status_code == 413
    assert response.json()["overLimit"]["code"] == 413


def test_crash_answers_500_without_leaking_the_exception_text() -> None:
    response = client(NOVA).get("/crash")
    assert response.status_code == 500
    assert "computeFault" in response.json()
    assert "shadow" not in response.text


def test_crash_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="nube.http")
    client(NOVA).get("/crash")
    [record] = [r for r in caplog.records if r.name == "nube.http"]
    assert record.getMessage() == "unhandled error on GET /crash"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


# -- status_of -----------------------------------------------------------------------------------


def test_subclass_of_a_mapped_error_takes_its_parents_status() -> None:
    assert KEYSTONE.status_of(NetworkNotFound("x")) == 404


def test_bare_nube_error_is_a_500() -> None:
    assert KEYSTONE.status_of(errors.NubeError("x")) == 500


# -- json_body, whose Invalid errors every API renders through its dialect ----------------------


def test_json_body_returns_the_decoded_object() -> None:
    response = client(NOVA).post("/json", json={"server": {"name": "a"}})
    assert response.status_code == 200
    assert response.json() == {"server": {"name": "a"}}


@pytest.mark.parametrize(
    "body",
    [b"", b"   \n", b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"'],
    ids=["empty", "blank", "malformed", "not-utf8", "array", "string"],
)
def test_json_body_answers_400_unless_the_body_is_a_json_object(body: bytes) -> None:
    response = client(NOVA).post("/json", content=body)
    assert response.status_code == 400
    assert list(response.json()) == ["badRequest"]

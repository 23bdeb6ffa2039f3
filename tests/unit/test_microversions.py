"""Microversion negotiation, and the middleware that echoes the chosen version on every response."""

from __future__ import annotations

import warnings

import pytest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import StarletteDeprecationWarning
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.errors import Invalid, NotAcceptable, NotFound
from appliance.web.dialects import NOVA
from appliance.web.microversions import (
    MicroversionMiddleware,
    Microversions,
    Version,
    microversion,
)

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; plain httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

COMPUTE = Microversions(
    "compute", Version(2, 1), Version(2, 96), legacy_header="X-OpenStack-Nova-API-Version"
)
VOLUME = Microversions("volume", Version(3, 0), Version(3, 70))


def negotiate(versions: Microversions, headers: dict[str, str]) -> Version:
    return versions.negotiate(Headers(headers=headers))


async def show_version(request: Request) -> Response:
    return JSONResponse({"version": str(microversion(request))})


async def missing(request: Request) -> Response:
    raise NotFound("Server abc could not be found.")


def client(versions: Microversions = COMPUTE) -> TestClient:
    app = Starlette(
        routes=[Route("/version", show_version), Route("/missing", missing)],
        middleware=[Middleware(MicroversionMiddleware, versions=versions, dialect=NOVA)],
        exception_handlers=NOVA.exception_handlers(),
    )
    return TestClient(app)


# -- Version -------------------------------------------------------------------------------------


def test_version_parses_major_dot_minor() -> None:
    assert Version.parse(" 2.79 ") == Version(2, 79)


@pytest.mark.parametrize("text", ["2", "2.01", "02.1", "v2.1", "2.1.1", "two.one", ""])
def test_version_parse_refuses_anything_but_major_dot_minor(text: str) -> None:
    with pytest.raises(Invalid):
        Version.parse(text)


def test_versions_order_numerically_not_as_text() -> None:
    assert Version(2, 10) > Version(2, 9)


def test_version_prints_as_major_dot_minor() -> None:
    assert str(Version(3, 0)) == "3.0"


# -- negotiate -----------------------------------------------------------------------------------


def test_no_version_header_means_the_minimum() -> None:
    assert negotiate(COMPUTE, {}) == Version(2, 1)


def test_latest_means_the_maximum() -> None:
    assert negotiate(COMPUTE, {"OpenStack-API-Version": "compute latest"}) == Version(2, 96)


def test_latest_is_case_insensitive() -> None:
    assert negotiate(COMPUTE, {"OpenStack-API-Version": "compute LATEST"}) == Version(2, 96)


def test_version_in_range_is_chosen() -> None:
    assert negotiate(COMPUTE, {"OpenStack-API-Version": "compute 2.53"}) == Version(2, 53)


def test_service_name_in_the_header_is_case_insensitive() -> None:
    assert negotiate(COMPUTE, {"OpenStack-API-Version": "Compute 2.53"}) == Version(2, 53)


def test_header_naming_several_services_picks_ours() -> None:
    headers = {"OpenStack-API-Version": "volume 3.5, compute 2.60"}
    assert negotiate(COMPUTE, headers) == Version(2, 60)


def test_header_for_another_service_is_ignored() -> None:
    assert negotiate(COMPUTE, {"OpenStack-API-Version": "volume 3.5"}) == Version(2, 1)


def test_legacy_header_is_honoured_when_the_new_one_is_absent() -> None:
    assert negotiate(COMPUTE, {"X-OpenStack-Nova-API-Version": "2.40"}) == Version(2, 40)


def test_new_header_wins_over_the_legacy_one() -> None:
    headers = {"OpenStack-API-Version": "compute 2.50", "X-OpenStack-Nova-API-Version": "2.40"}
    assert negotiate(COMPUTE, headers) == Version(2, 50)


def test_legacy_header_is_ignored_by_a_service_without_one() -> None:
    assert negotiate(VOLUME, {"X-OpenStack-Nova-API-Version": "3.40"}) == Version(3, 0)


def test_bounds_themselves_are_served() -> None:
    assert negotiate(VOLUME, {"OpenStack-API-Version": "volume 3.70"}) == Version(3, 70)


@pytest.mark.parametrize("text", ["2.0", "2.97", "3.1", "1.99"])
def test_version_outside_the_range_is_not_acceptable(text: str) -> None:
    with pytest.raises(NotAcceptable):
        negotiate(COMPUTE, {"OpenStack-API-Version": f"compute {text}"})


def test_malformed_version_is_invalid() -> None:
    with pytest.raises(Invalid):
        negotiate(COMPUTE, {"OpenStack-API-Version": "compute 2.x"})


# -- echo_headers --------------------------------------------------------------------------------


def test_echo_names_the_service_and_the_legacy_header() -> None:
    assert COMPUTE.echo_headers(Version(2, 5)) == {
        "OpenStack-API-Version": "compute 2.5",
        "X-OpenStack-Nova-API-Version": "2.5",
        "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
    }


def test_echo_without_a_legacy_header_varies_on_the_new_one_only() -> None:
    assert VOLUME.echo_headers(Version(3, 7)) == {
        "OpenStack-API-Version": "volume 3.7",
        "Vary": "OpenStack-API-Version",
    }


# -- MicroversionMiddleware ----------------------------------------------------------------------


def test_route_sees_the_negotiated_version() -> None:
    response = client().get("/version", headers={"OpenStack-API-Version": "compute 2.42"})
    assert response.json() == {"version": "2.42"}


def test_success_echoes_the_chosen_version_and_vary() -> None:
    response = client().get("/version", headers={"OpenStack-API-Version": "compute 2.42"})
    assert response.headers["openstack-api-version"] == "compute 2.42"
    assert response.headers["x-openstack-nova-api-version"] == "2.42"
    assert response.headers["vary"] == "OpenStack-API-Version, X-OpenStack-Nova-API-Version"


def test_error_answered_by_the_app_still_echoes_the_version() -> None:
    response = client().get("/missing", headers={"OpenStack-API-Version": "compute 2.42"})
    assert response.status_code == 404
    assert response.headers["openstack-api-version"] == "compute 2.42"


def test_unknown_route_still_echoes_the_version() -> None:
    response = client().get("/nowhere", headers={"OpenStack-API-Version": "compute latest"})
    assert response.status_code == 404
    assert response.headers["openstack-api-version"] == "compute 2.96"


def test_version_above_max_answers_406_and_still_echoes_headers() -> None:
    response = client().get("/version", headers={"OpenStack-API-Version": "compute 2.97"})
    assert response.status_code == 406
    assert response.headers["openstack-api-version"] == "compute 2.1"
    assert response.headers["vary"] == "OpenStack-API-Version, X-OpenStack-Nova-API-Version"


def test_version_above_max_is_a_not_acceptable_fault_naming_the_range() -> None:
    response = client().get("/version", headers={"OpenStack-API-Version": "compute 2.97"})
    fault = response.json()["notAcceptable"]
    assert fault["code"] == 406
    assert "Minimum is 2.1 and maximum is 2.96" in fault["message"]


def test_malformed_version_answers_400_and_still_echoes_headers() -> None:
    response = client().get("/version", headers={"OpenStack-API-Version": "compute 2.x"})
    assert response.status_code == 400
    assert response.headers["openstack-api-version"] == "compute 2.1"


def test_legacy_header_out_of_range_answers_406() -> None:
    response = client().get("/version", headers={"X-OpenStack-Nova-API-Version": "2.0"})
    assert response.status_code == 406

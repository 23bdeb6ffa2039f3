"""Nova's admin views of the host: os-hypervisors, os-services, os-availability-zone."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from appliance.cloud import cloud
from appliance.compute import host_wire as wire
from appliance.compute.hosts import BINARY, HOST, HostStatus, require_admin
from appliance.compute.routes import base, v
from appliance.errors import Invalid, NotFound
from appliance.web.middleware import caller

RULE = "os_compute_api:os-hypervisors:%s"
_TRUE, _FALSE = {"1", "t", "true", "on", "y", "yes"}, {"0", "f", "false", "off", "n", "no"}


def _with_servers(request: Request) -> bool:
    if v(request) < (2, 53):
        return False
    raw = request.query_params.get("with_servers", "false").strip().lower()
    if raw not in _TRUE | _FALSE:
        raise Invalid(f"Invalid input for query parameters with_servers. Value: {raw}.")
    return raw in _TRUE


def _not_found(ident: str) -> NotFound:
    return NotFound(f"Hypervisor with ID '{ident}' could not be found.")


async def _status(request: Request, rule: str, with_servers: bool = False) -> HostStatus:
    return await cloud(request).hosts.status(caller(request), RULE % rule, with_servers)


async def _list(request: Request, detail: bool) -> Response:
    q = request.query_params
    with_servers = _with_servers(request)
    st = await _status(request, "list-detail" if detail else "list", with_servers)
    pattern = q.get("hypervisor_hostname_pattern") if v(request) >= (2, 53) else None
    if pattern is not None:
        if "limit" in q or "marker" in q:
            raise Invalid(
                "Paging over hypervisors with the hypervisor_hostname_pattern query parameter "
                "is not supported."
            )
        if pattern not in HOST:
            raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    items = [wire.hypervisor_json(st, v(request), detail, with_servers)]
    body: dict[str, object] = {"hypervisors": items}
    if v(request) >= (2, 33) and pattern is None:
        marker, limit = q.get("marker"), q.get("limit")
        if marker is not None:
            if marker != str(wire.hypervisor_id(st, v(request))):
                raise Invalid(f"marker [{marker}] not found")
            items.clear()
        if limit is not None:
            if not limit.isdigit():
                raise Invalid(f"Invalid input for query parameters limit. Value: {limit}.")
            if int(limit) and len(items) >= int(limit):
                del items[int(limit) :]
                kind = "os-hypervisors/detail" if detail else "os-hypervisors"
                href = f"{base(request)}/compute/v2.1/{kind}?limit={limit}&marker={items[-1]['id']}"
                body["hypervisors_links"] = [{"rel": "next", "href": href}]
    return JSONResponse(body)


async def hypervisors_index(request: Request) -> Response:
    return await _list(request, detail=False)


async def hypervisors_detail(request: Request) -> Response:
    return await _list(request, detail=True)


async def _one(request: Request, rule: str, with_servers: bool = False) -> HostStatus:
    ident = request.path_params["hypervisor_id"]
    st = await _status(request, rule, with_servers)
    if v(request) >= (2, 53):
        if len(ident) != 36 or ident.count("-") != 4:
            raise Invalid(f"Invalid uuid {ident}")
    if ident != str(wire.hypervisor_id(st, v(request))):
        raise _not_found(ident)
    return st


async def hypervisor_show(request: Request) -> Response:
    with_servers = _with_servers(request)
    st = await _one(request, "show", with_servers)
    return JSONResponse({"hypervisor": wire.hypervisor_json(st, v(request), True, with_servers)})


async def hypervisor_uptime(request: Request) -> Response:
    if v(request) >= (2, 88):
        raise NotFound("The uptime of a hypervisor is in its details from microversion 2.88.")
    return JSONResponse(wire.uptime_json(await _one(request, "uptime"), v(request)))


async def hypervisor_statistics(request: Request) -> Response:
    if v(request) >= (2, 88):
        raise NotFound("Hypervisor statistics were removed in microversion 2.88.")
    return JSONResponse(wire.statistics_json(await _status(request, "statistics")))


async def _matching(request: Request, rule: str, with_servers: bool) -> Response:
    """The search and servers routes that 2.53 replaced with query parameters."""
    if v(request) >= (2, 53):
        raise NotFound("Use hypervisor_hostname_pattern and with_servers from microversion 2.53.")
    pattern = request.path_params["hypervisor_id"]
    st = await _status(request, rule, with_servers)
    if pattern not in HOST:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return JSONResponse({"hypervisors": [wire.hypervisor_json(st, v(request), False)]})


async def hypervisor_search(request: Request) -> Response:
    return await _matching(request, "search", with_servers=False)


async def hypervisor_servers(request: Request) -> Response:
    return await _matching(request, "servers", with_servers=True)


async def services_index(request: Request) -> Response:
    st = await cloud(request).hosts.status(caller(request), "os_compute_api:os-services:list")
    q = request.query_params
    wanted = (q.get("host") or HOST, q.get("binary") or BINARY)
    found = [wire.service_json(st, v(request))] if wanted == (HOST, BINARY) else []
    return JSONResponse({"services": found})


async def aggregates_index(request: Request) -> Response:
    """Nube has no host aggregates (one host, one zone); `openstack hypervisor show` asks."""
    require_admin(caller(request), "os_compute_api:os-aggregates:index")
    return JSONResponse({"aggregates": []})


async def availability_zones(request: Request) -> Response:
    hosts = cloud(request).hosts
    if request.url.path.endswith("/detail"):
        st = await hosts.status(caller(request), "os_compute_api:os-availability-zone:detail")
        return JSONResponse(wire.zones_json(st.up, st))
    caller(request)
    return JSONResponse(wire.zones_json(await hosts.available()))


routes: list[BaseRoute] = [
    Route("/os-hypervisors", hypervisors_index, methods=["GET"]),
    Route("/os-hypervisors/detail", hypervisors_detail, methods=["GET"]),
    Route("/os-hypervisors/statistics", hypervisor_statistics, methods=["GET"]),
    Route("/os-hypervisors/{hypervisor_id}", hypervisor_show, methods=["GET"]),
    Route("/os-hypervisors/{hypervisor_id}/uptime", hypervisor_uptime, methods=["GET"]),
    Route("/os-hypervisors/{hypervisor_id}/search", hypervisor_search, methods=["GET"]),
    Route("/os-hypervisors/{hypervisor_id}/servers", hypervisor_servers, methods=["GET"]),
    Route("/os-services", services_index, methods=["GET"]),
    Route("/os-aggregates", aggregates_index, methods=["GET"]),
    Route("/os-availability-zone", availability_zones, methods=["GET"]),
    Route("/os-availability-zone/detail", availability_zones, methods=["GET"]),
]

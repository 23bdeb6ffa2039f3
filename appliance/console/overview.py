"""Overview: the project's quota usage (instances, vCPUs, RAM, volumes, storage, floating IPs)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.cloud import cloud
from appliance.console import session as sessions
from appliance.console.pages import NavItem, render


@dataclass(frozen=True, slots=True)
class Meter:
    label: str
    used: int
    limit: int  # -1: unlimited
    unit: str = ""

    @property
    def percent(self) -> int:
        if self.limit <= 0:
            return 0 if self.limit < 0 or not self.used else 100
        return min(100, round(100 * self.used / self.limit))


async def overview(request: Request) -> Response:
    session = sessions.require(request)
    c = cloud(request)
    ctx = session.ctx
    project = ctx.project_id or ""
    compute = c.quotas.quota_set(ctx, project)
    used = c.quotas.usage(project)
    volumes = c.volumes.usage(project)
    network = c.network_quotas.details(ctx, project)
    meters = [
        Meter("Instances", used["instances"], compute["instances"]),
        Meter("vCPUs", used["cores"], compute["cores"]),
        Meter("RAM", used["ram"], compute["ram"], "MiB"),
        Meter("Volumes", volumes["volumes"], c.volumes.limit(project, "volumes")),
        Meter("Volume storage", volumes["gigabytes"], c.volumes.limit(project, "gigabytes"), "GiB"),
        Meter("Floating IPs", network["floatingip"]["used"], network["floatingip"]["limit"]),
        Meter("Networks", network["network"]["used"], network["network"]["limit"]),
        Meter("Security groups", network["security_group"]["used"], network["security_group"]["limit"]),
    ]  # fmt: skip
    recent = c.servers.page(ctx, 0, 5)
    return render(request, session, "overview.html", meters=meters, recent=recent)


nav = [NavItem("Overview", "/console/")]
routes = [Route("/", overview, methods=["GET"])]

"""Overview: the project's quota usage (instances, vCPUs, RAM, volumes, storage, floating IPs), with
live charts of the last minutes drawn from the samples in History."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.cloud import Cloud, cloud
from appliance.console import session as sessions
from appliance.console.history import History
from appliance.console.pages import NavItem, render
from appliance.context import Context


@dataclass(frozen=True, slots=True)
class Meter:
    label: str
    used: int
    limit: int  # -1: unlimited
    unit: str = ""

    @property
    def text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.used}{unit} of {'unlimited' if self.limit < 0 else self.limit}"

    @property
    def percent(self) -> int:
        if self.limit <= 0:
            return 0 if self.limit < 0 or not self.used else 100
        return min(100, round(100 * self.used / self.limit))


def meters(c: Cloud, ctx: Context) -> list[Meter]:
    project = ctx.project_id or ""
    compute = c.quotas.quota_set(ctx, project)
    used = c.quotas.usage(project)
    volumes = c.volumes.usage(project)
    network = c.network_quotas.details(ctx, project)
    return [
        Meter("Instances", used["instances"], compute["instances"]),
        Meter("vCPUs", used["cores"], compute["cores"]),
        Meter("RAM", used["ram"], compute["ram"], "MiB"),
        Meter("Volumes", volumes["volumes"], c.volumes.limit(project, "volumes")),
        Meter("Volume storage", volumes["gigabytes"], c.volumes.limit(project, "gigabytes"), "GiB"),
        Meter("Floating IPs", network["floatingip"]["used"], network["floatingip"]["limit"]),
        Meter("Networks", network["network"]["used"], network["network"]["limit"]),
        Meter("Security groups", network["security_group"]["used"], network["security_group"]["limit"]),
    ]  # fmt: skip


ACTIVITY = "Actions (10 min)"


def activity_count(c: Cloud, ctx: Context) -> int:
    """The project's instance actions started in the last ten minutes."""
    since = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return sum(1 for a in c.servers.recent_actions(ctx, 100) if a["start_time"] >= since)


def sample(request: Request, c: Cloud, ctx: Context) -> list[Meter]:
    """The meters now; also recorded in the project's History, which the charts draw."""
    now = meters(c, ctx)
    values = {m.label: m.used for m in now} | {ACTIVITY: activity_count(c, ctx)}
    history(request).record(ctx.project_id or "", values)
    return now


def history(request: Request) -> History:
    """The console app's History (routes.app() makes one per process)."""
    found: History = request.app.state.history
    return found


async def overview(request: Request) -> Response:
    session = sessions.require(request)
    c = cloud(request)
    return render(request, session, "overview.html", meters=sample(request, c, session.ctx),
                  activity_label=ACTIVITY, recent=c.servers.page(session.ctx, 0, 5),
                  activity=c.servers.recent_actions(session.ctx, 10))  # fmt: skip


async def usage(request: Request) -> Response:
    """The meters again and the recent samples, for the overview's script to refresh in place."""
    session = sessions.require(request)
    now = sample(request, cloud(request), session.ctx)
    body = {
        "meters": [{"label": m.label, "used": m.used, "limit": m.limit, "unit": m.unit, "text": m.text}
                   for m in now],
        "history": history(request).series(session.ctx.project_id or ""),
    }  # fmt: skip
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


nav = [NavItem("Overview", "/console/")]
routes = [Route("/", overview, methods=["GET"]), Route("/usage", usage, methods=["GET"])]

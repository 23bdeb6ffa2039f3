"""Overview: API health (and, for admins, the hypervisor's), quota usage bars, counts, and what is
in progress or failed."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Label, ProgressBar, Static

from tui import resources
from tui.resources import Overview
from tui.screens.base import NubeScreen
from tui.widgets.nav import SectionBar

# (label, limits source, used key, max key)
QUOTAS = (
    ("Instances", "compute", "totalInstancesUsed", "maxTotalInstances"),
    ("vCPUs", "compute", "totalCoresUsed", "maxTotalCores"),
    ("RAM MiB", "compute", "totalRAMUsed", "maxTotalRAMSize"),
    ("Volumes", "volume", "totalVolumesUsed", "maxTotalVolumes"),
    ("Volume GiB", "volume", "totalGigabytesUsed", "maxTotalVolumeGigabytes"),
)


class OverviewScreen(NubeScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "reload", "Refresh")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield SectionBar(id="sections")
        with Horizontal(id="overview-top"):
            with Vertical(id="health-box"):
                yield Label("API health", classes="section-title")
                yield DataTable(id="health", cursor_type="none", show_header=False)
                yield Static("", id="host", classes="hidden")
            with Vertical(id="quota-box"):
                yield Label("Quota usage", classes="section-title")
                with Grid(id="quotas"):
                    for i, (label, _, _, _) in enumerate(QUOTAS):
                        yield Label(label)
                        yield ProgressBar(id=f"quota-{i}", show_eta=False, show_percentage=False)
                        yield Label("", id=f"quota-text-{i}")
        yield Static("", id="counts")
        with Horizontal(id="overview-bottom"):
            with Vertical():
                yield Label("In progress and errors", classes="section-title")
                yield DataTable(id="attention", cursor_type="row")
            with Vertical():
                yield Label("Recent jobs", classes="section-title")
                yield DataTable(id="jobs", cursor_type="row")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#health", DataTable).add_columns("Service", "State", "Detail")
        self.query_one("#attention", DataTable).add_columns("Kind", "Name", "Status", "Message")
        self.query_one("#jobs", DataTable).add_columns("Started", "Action", "Server", "Message")
        self.set_interval(10.0, self.auto_reload)
        self.action_reload()

    def on_screen_resume(self) -> None:
        self.query_one(SectionBar).update_sections()
        self.action_reload()

    def auto_reload(self) -> None:
        if self.is_current:
            self.action_reload()

    def action_reload(self) -> None:
        self.nube.call(resources.overview, self.show, group="overview")

    def show(self, o: Overview) -> None:
        health = self.query_one("#health", DataTable)
        health.clear()
        for h in o.health:
            health.add_row(h.service, "up" if h.ok else "DOWN", h.detail, key=h.service)
        host = self.query_one("#host", Static)
        host.set_class(o.host is None, "hidden")
        if o.host is not None:
            hv = o.host
            health.add_row("libvirt", "up" if hv.up else "DOWN", hv.hypervisor, key="libvirt")
            # A host libvirt never answered for has no capacity to show (Nova's last report).
            host.update(
                f"vCPUs {hv.vcpus_used}/{hv.vcpus}   running VMs {hv.running}\n"
                f"RAM {hv.ram_used}/{hv.ram} MiB"
                if hv.vcpus
                else "no report from libvirt yet"
            )
        for i, (_, source, used_key, max_key) in enumerate(QUOTAS):
            limits = o.compute if source == "compute" else o.volume
            used, most = int(limits.get(used_key, 0)), int(limits.get(max_key, -1))
            bar = self.query_one(f"#quota-{i}", ProgressBar)
            bar.update(total=most if most > 0 else None, progress=used)
            text = f"{used}/{most}" if most >= 0 else f"{used}/unlimited"
            self.query_one(f"#quota-text-{i}", Label).update(text)
        counts = "   ".join(f"{name} {n}" for name, n in o.counts.items())
        self.query_one("#counts", Static).update(counts)
        attention = self.query_one("#attention", DataTable)
        attention.clear()
        for n, (kind, name, status, message) in enumerate(o.attention):
            attention.add_row(kind, name, status, message, key=str(n))
        jobs = self.query_one("#jobs", DataTable)
        jobs.clear()
        for n, job in enumerate(o.jobs):
            jobs.add_row(*job, key=str(n))

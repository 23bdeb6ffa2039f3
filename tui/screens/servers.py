"""Servers: live status, details, start/stop/reboot/delete, the launch dialog, the console log."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from textual.binding import Binding, BindingType

from tui import resources
from tui.client import Session
from tui.resources import LaunchSpec
from tui.screens.base import Columns, ListScreen
from tui.screens.console import ConsoleScreen
from tui.widgets.dialogs import ConfirmDialog, Field, FormDialog
from tui.widgets.table import Row


def addresses(row: Row) -> str:
    parts = []
    for net, addrs in (row.get("addresses") or {}).items():
        parts.append(f"{net}=" + ",".join(a["addr"] for a in addrs))
    return " ".join(parts)


def flavor(row: Row) -> str:
    f = row.get("flavor") or {}
    return str(f.get("original_name") or f.get("id") or "")


COLUMNS: Columns = [
    ("name", "Name", lambda r: r.get("name")),
    ("status", "Status", lambda r: r.get("status")),
    ("task", "Task", lambda r: r.get("OS-EXT-STS:task_state")),
    ("flavor", "Flavor", flavor),
    ("addresses", "Addresses", addresses),
]


class ServersScreen(ListScreen):
    REFRESH_SECONDS = 3.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "launch", "Launch"),
        Binding("s", "act('os-start')", "Start"),
        Binding("x", "act('os-stop')", "Stop"),
        Binding("b", "act('reboot')", "Reboot"),
        Binding("d", "delete", "Delete"),
        Binding("c", "console", "Console"),
    ]

    def tables(self) -> dict[str, Any]:
        return {"servers": ("Servers", COLUMNS, resources.servers)}

    def detail(self, row: Row) -> str:
        fault = (row.get("fault") or {}).get("message")
        image = (row.get("image") or {}).get("id", "volume") if row.get("image") else "volume"
        parts = [
            f"id {row['id']}",
            f"image {image}",
            f"key {row.get('key_name') or '-'}",
            f"power {row.get('OS-EXT-STS:power_state', '-')}",
            f"created {row.get('created', '')}",
        ]
        if fault:
            parts.append(f"fault: {fault}")
        return "  ".join(parts)

    def action_act(self, action: str) -> None:
        row = self.selected("server")
        if row is None:
            return
        verb = {"os-start": "start", "os-stop": "stop", "reboot": "reboot"}[action]

        def go(yes: bool | None) -> None:
            if yes:
                self.nube.call(
                    lambda s: resources.server_action(s, row["id"], action),
                    lambda _: self.after(f"{verb}: {row['name']}"),
                )

        self.app.push_screen(ConfirmDialog(f"{verb.capitalize()} server {row['name']}?"), go)

    def action_delete(self) -> None:
        row = self.selected("server")
        if row is None:
            return

        def go(yes: bool | None) -> None:
            if yes:
                self.nube.call(
                    lambda s: resources.delete_server(s, row["id"]),
                    lambda _: self.after(f"deleting {row['name']}"),
                )

        self.app.push_screen(ConfirmDialog(f"Delete server {row['name']}?"), go)

    def after(self, message: str) -> None:
        self.notify(message)
        self.action_reload()

    def action_console(self) -> None:
        row = self.selected("server")
        if row is not None:
            self.app.push_screen(ConsoleScreen(row["id"], row["name"]))

    def action_launch(self) -> None:
        self.nube.call(launch_choices, self.show_launch)

    def show_launch(self, choices: dict[str, list[tuple[str, str]]]) -> None:
        none = [("(no network)", "")]
        fields = [
            Field("name", "Name"),
            Field("image", "Image", options=choices["images"]),
            Field("flavor", "Flavor", options=choices["flavors"]),
            Field("network", "Network", options=choices["networks"] + none, required=False),
            Field("key", "Key pair", options=choices["keypairs"], blank=True, required=False),
        ]
        self.app.push_screen(FormDialog("Launch a server", fields, "Launch"), self.launch)

    def launch(self, values: dict[str, str] | None) -> None:
        if not values:
            return
        spec = LaunchSpec(
            values["name"],
            values["image"],
            values["flavor"],
            values["network"] or None,
            values["key"] or None,
        )
        self.nube.call(
            partial(resources.launch, spec=spec),
            lambda server: self.launched(server, spec.name),
        )

    def launched(self, server: dict[str, Any], name: str) -> None:
        self.after(f"launching {name}")
        self.call_after_refresh(self.table().select_key, server["id"])


def launch_choices(s: Session) -> dict[str, list[tuple[str, str]]]:
    # kernels and ramdisks (aki/ari) are parts of an image, not something to boot
    images = [
        i
        for i in resources.images(s)
        if i.get("status") == "active" and i.get("disk_format") not in ("aki", "ari")
    ]
    flavors = sorted(resources.flavors(s), key=lambda f: (f.get("ram", 0), f["name"]))
    return {
        "images": [(i["name"] or i["id"], i["id"]) for i in images],
        "flavors": [(f"{f['name']} ({f['vcpus']} vCPU, {f['ram']} MiB)", f["id"]) for f in flavors],
        "networks": [(n["name"] or n["id"], n["id"]) for n in resources.networks(s)],
        "keypairs": [(k["name"], k["name"]) for k in resources.keypairs(s)],
    }

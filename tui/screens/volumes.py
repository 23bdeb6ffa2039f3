"""Volumes: create, attach to a server, detach, delete."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding, BindingType

from tui import resources
from tui.screens.base import Columns, ListScreen
from tui.widgets.dialogs import ConfirmDialog, Field, FormDialog
from tui.widgets.table import Row


def attached_to(row: Row) -> str:
    return ",".join(a.get("server_id", "")[:8] for a in row.get("attachments") or [])


COLUMNS: Columns = [
    ("name", "Name", lambda r: r.get("name")),
    ("status", "Status", lambda r: r.get("status")),
    ("size", "Size GiB", lambda r: r.get("size")),
    ("attached", "Attached to", attached_to),
    ("bootable", "Bootable", lambda r: r.get("bootable")),
]


class VolumesScreen(ListScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "create", "Create"),
        Binding("a", "attach", "Attach"),
        Binding("t", "detach", "Detach"),
        Binding("d", "delete", "Delete"),
    ]

    def tables(self) -> dict[str, Any]:
        return {"volumes": ("Volumes", COLUMNS, resources.volumes)}

    def detail(self, row: Row) -> str:
        servers = ", ".join(a.get("server_id", "") for a in row.get("attachments") or [])
        return f"id {row['id']}  type {row.get('volume_type', '')}  attached to {servers or '-'}"

    def action_create(self) -> None:
        fields = [Field("name", "Name"), Field("size", "Size (GiB)", "1")]
        self.app.push_screen(FormDialog("Create a volume", fields, "Create"), self.create)

    def create(self, values: dict[str, str] | None) -> None:
        if not values:
            return
        try:
            size = int(values["size"])
        except ValueError:
            self.notify("size must be a whole number of GiB", severity="warning")
            return
        self.nube.call(
            lambda s: resources.create_volume(s, values["name"], size),
            lambda v: self.done(f"creating volume {v.get('name') or v['id']}"),
        )

    def action_attach(self) -> None:
        row = self.selected("volume")
        if row is None:
            return

        def show(servers: list[dict[str, Any]]) -> None:
            options = [(s["name"], s["id"]) for s in servers]
            if not options:
                self.notify("no server to attach to", severity="warning")
                return
            field = Field("server", "Server", options=options)
            dialog = FormDialog(f"Attach {row.get('name') or row['id']}", [field], "Attach")
            self.app.push_screen(dialog, lambda v: self.attach(row, v))

        self.nube.call(resources.servers, show)

    def attach(self, row: Row, values: dict[str, str] | None) -> None:
        if values:
            self.nube.call(
                lambda s: resources.attach_volume(s, values["server"], row["id"]),
                lambda _: self.done(f"attaching {row.get('name') or row['id']}"),
            )

    def action_detach(self) -> None:
        row = self.selected("volume")
        if row is None:
            return
        attachments = row.get("attachments") or []
        if not attachments:
            self.notify("this volume is not attached", severity="warning")
            return
        server_id = attachments[0]["server_id"]

        def go(yes: bool | None) -> None:
            if yes:
                self.nube.call(
                    lambda s: resources.detach_volume(s, server_id, row["id"]),
                    lambda _: self.done(f"detaching {row.get('name') or row['id']}"),
                )

        name = row.get("name") or row["id"]
        self.app.push_screen(ConfirmDialog(f"Detach {name} from {server_id[:8]}?"), go)

    def action_delete(self) -> None:
        row = self.selected("volume")
        if row is None:
            return

        def go(yes: bool | None) -> None:
            if yes:
                self.nube.call(
                    lambda s: resources.delete_volume(s, row["id"]),
                    lambda _: self.done(f"deleting {row.get('name') or row['id']}"),
                )

        self.app.push_screen(ConfirmDialog(f"Delete volume {row.get('name') or row['id']}?"), go)

    def done(self, message: str) -> None:
        self.notify(message)
        self.action_reload()

"""Buckets (Swift containers, the same buckets S3 sees): browse, upload and download with progress."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, ProgressBar, TabbedContent

from tui import resources
from tui.client import Session
from tui.screens.base import Columns, ListScreen
from tui.widgets.dialogs import ConfirmDialog, Field, FormDialog
from tui.widgets.table import Row

PROGRESS_STEP = 1 << 20

BUCKETS: Columns = [
    ("name", "Bucket", lambda r: r.get("name")),
    ("count", "Objects", lambda r: r.get("count")),
    ("bytes", "Bytes", lambda r: r.get("bytes")),
]
OBJECTS: Columns = [
    ("name", "Key", lambda r: r.get("name")),
    ("bytes", "Bytes", lambda r: r.get("bytes")),
    ("modified", "Last modified", lambda r: str(r.get("last_modified", ""))[:19]),
]


def keyed(rows: list[Row]) -> list[Row]:
    return [{**r, "id": r["name"]} for r in rows]


class BucketsScreen(ListScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_bucket", "New bucket"),
        Binding("u", "upload", "Upload"),
        Binding("w", "download", "Download"),
        Binding("d", "delete", "Delete object"),
    ]
    bucket: str = ""
    DETAILS_ON_ENTER = False  # Enter opens a bucket

    def tables(self) -> dict[str, Any]:
        return {
            "buckets": ("Buckets", BUCKETS, lambda s: keyed(resources.buckets(s))),
            "objects": ("Objects", OBJECTS, self.fetch_objects),
        }

    def fetch_objects(self, s: Session) -> list[Row]:
        return keyed(resources.objects(s, self.bucket)) if self.bucket else []

    def compose_extra(self) -> ComposeResult:
        yield ProgressBar(id="progress", show_eta=False, classes="hidden")

    @on(DataTable.RowSelected, "#buckets")
    def open_bucket(self, event: DataTable.RowSelected) -> None:
        self.bucket = str(event.row_key.value)
        self.query_one(TabbedContent).active = "tab-objects"
        self.sub_title = f"bucket {self.bucket}"
        self.action_reload()

    def current_bucket(self) -> str | None:
        if self.query_one(TabbedContent).active == "tab-buckets":
            row = self.table("buckets").selected
            if row is not None:
                self.bucket = row["name"]
        if not self.bucket:
            self.notify("no bucket selected (Enter opens one)", severity="warning")
            return None
        return self.bucket

    def action_new_bucket(self) -> None:
        def create(values: dict[str, str] | None) -> None:
            if values:
                self.nube.call(
                    lambda s: resources.create_bucket(s, values["name"]),
                    lambda _: self.done(f"bucket {values['name']} created"),
                )

        self.app.push_screen(FormDialog("New bucket", [Field("name", "Name")], "Create"), create)

    def action_upload(self) -> None:
        bucket = self.current_bucket()
        if bucket is None:
            return
        fields = [Field("path", "Local file"), Field("key", "Key", required=False,
                                                     placeholder="(the file's name)")]  # fmt: skip
        dialog = FormDialog(f"Upload to {bucket}", fields, "Upload")
        self.app.push_screen(dialog, lambda v: self.upload(bucket, v))

    def upload(self, bucket: str, values: dict[str, str] | None) -> None:
        if not values:
            return
        source = Path(values["path"]).expanduser()
        if not source.is_absolute():
            source = self.nube.workdir / source
        if not source.is_file():
            self.notify(f"{source}: no such file", severity="error")
            return
        key = values["key"] or source.name
        total = source.stat().st_size
        self.start_progress(total)
        reported = [0]

        def progress(sent: int) -> None:
            if sent - reported[0] >= PROGRESS_STEP or sent == total:
                reported[0] = sent
                self.nube.from_thread(self.set_progress, sent)

        self.nube.call(
            lambda s: resources.upload(s, bucket, key, source, progress),
            lambda _: self.done(f"uploaded {key} ({total} bytes)"),
            group="transfer",
        )

    def action_download(self) -> None:
        bucket = self.current_bucket()
        row = self.table("objects").selected if bucket else None
        if bucket is None or row is None:
            if bucket is not None:
                self.notify("no object selected", severity="warning")
            return
        key = row["name"]
        default = str(self.nube.workdir / PurePosixPath(key).name)
        dialog = FormDialog(f"Download {key}", [Field("path", "Save as", default)], "Download")
        self.app.push_screen(dialog, lambda v: self.download(bucket, key, v))

    def download(self, bucket: str, key: str, values: dict[str, str] | None) -> None:
        if not values:
            return
        target = Path(values["path"]).expanduser()
        if not target.is_absolute():
            target = self.nube.workdir / target
        self.start_progress(None)
        reported = [0]

        def progress(done: int, total: int) -> None:
            if done - reported[0] >= PROGRESS_STEP or done == total:
                reported[0] = done
                self.nube.from_thread(self.set_progress, done, total)

        self.nube.call(
            lambda s: resources.download(s, bucket, key, target, progress),
            lambda n: self.done(f"downloaded {key} to {target} ({n} bytes)"),
            group="transfer",
        )

    def action_delete(self) -> None:
        bucket = self.current_bucket()
        row = self.table("objects").selected if bucket else None
        if bucket is None or row is None:
            return

        def go(yes: bool | None) -> None:
            if yes:
                self.nube.call(
                    lambda s: resources.delete_object(s, bucket, row["name"]),
                    lambda _: self.done(f"deleted {row['name']}"),
                )

        self.app.push_screen(ConfirmDialog(f"Delete {bucket}/{row['name']}?"), go)

    def start_progress(self, total: int | None) -> None:
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=total, progress=0)
        bar.remove_class("hidden")

    def set_progress(self, done: int, total: int | None = None) -> None:
        bar = self.query_one("#progress", ProgressBar)
        if total:
            bar.update(total=total)
        bar.update(progress=done)

    def done(self, message: str) -> None:
        self.notify(message)
        self.action_reload()

"""Images the project can see."""

from __future__ import annotations

from typing import Any

from tui import resources
from tui.screens.base import Columns, ListScreen
from tui.widgets.table import Row


def mib(row: Row) -> str:
    size = row.get("size")
    return f"{size / 1024 / 1024:.1f}" if isinstance(size, int) else ""


COLUMNS: Columns = [
    ("name", "Name", lambda r: r.get("name")),
    ("status", "Status", lambda r: r.get("status")),
    ("format", "Format", lambda r: r.get("disk_format")),
    ("size", "Size MiB", mib),
    ("visibility", "Visibility", lambda r: r.get("visibility")),
]


class ImagesScreen(ListScreen):
    REFRESH_SECONDS = 10.0

    def tables(self) -> dict[str, Any]:
        return {"images": ("Images", COLUMNS, resources.images)}

    def detail(self, row: Row) -> str:
        return (
            f"id {row['id']}  min disk {row.get('min_disk', 0)} GiB  owner {row.get('owner', '')}"
        )

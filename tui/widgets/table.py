"""A DataTable that is refreshed in place (no clear/redraw: rows keep their place and the cursor)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

Row = dict[str, Any]
# status -> the theme colour it is drawn in
STATUS_COLOURS = {
    "ACTIVE": "success", "available": "success", "active": "success", "in-use": "accent",
    "SHUTOFF": "warning", "BUILD": "primary", "creating": "primary", "ERROR": "error", "error": "error",
}  # fmt: skip


class ResourceTable(DataTable[Any]):
    """Columns are (key, label, getter) triples; rows are keyed by each row's id."""

    def __init__(
        self, columns: Sequence[tuple[str, str, Callable[[Row], Any]]], *, id: str | None = None
    ) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.spec = list(columns)
        self.rows_by_key: dict[str, Row] = {}
        self.filter_text = ""
        self._all: list[Row] = []

    def on_mount(self) -> None:
        for key, label, _ in self.spec:
            self.add_column(label, key=key)

    def cell(self, value: Any) -> str | Text:
        if value is None:
            return ""
        if isinstance(value, str) and value in STATUS_COLOURS:
            colour = getattr(self.app.current_theme, STATUS_COLOURS[value], None)
            return Text(value, style=f"bold {colour}" if colour else "bold")
        return str(value)

    def values(self, row: Row) -> list[str | Text]:
        return [self.cell(get(row)) for _, _, get in self.spec]

    def matches(self, row: Row) -> bool:
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        return any(needle in str(v).lower() for v in self.values(row))

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.sync(self._all)

    def sync(self, rows: list[Row]) -> None:
        """Update changed cells, add new rows, drop gone ones, in one pass."""
        self._all = rows
        wanted = {str(r["id"]): r for r in rows if self.matches(r)}
        for key in list(self.rows_by_key):
            if key not in wanted:
                self.remove_row(key)
                del self.rows_by_key[key]
        for key, row in wanted.items():
            new = self.values(row)
            if key not in self.rows_by_key:
                self.add_row(*new, key=key)
            else:
                old = self.values(self.rows_by_key[key])
                for (col, _, _), before, after in zip(self.spec, old, new, strict=True):
                    if str(before) != str(after):
                        self._update(key, col, after)
            self.rows_by_key[key] = row

    def _update(self, key: str, col: str, value: str | Text) -> None:
        try:
            self.update_cell(key, col, value, update_width=True)
        except (CellDoesNotExist, RowDoesNotExist):
            pass

    @property
    def selected(self) -> Row | None:
        if not self.rows_by_key or self.cursor_row < 0:
            return None
        try:
            key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value
        except CellDoesNotExist:
            return None
        return self.rows_by_key.get(str(key))

    def select_key(self, key: str) -> None:
        if key in self.rows_by_key:
            self.move_cursor(row=self.get_row_index(key))

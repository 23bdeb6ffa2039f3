"""The shape shared by the list screens: one or more ResourceTables (tabs when several), a `/` filter,
a detail line, refreshed by a worker on a timer while the screen is showing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static, TabbedContent, TabPane

from tui.client import Session
from tui.widgets.details import DetailsDialog
from tui.widgets.nav import SectionBar
from tui.widgets.table import ResourceTable, Row

if TYPE_CHECKING:
    from tui.app import NubeApp

Columns = list[tuple[str, str, Callable[[Row], Any]]]


class NubeScreen(Screen[None]):
    """Any screen of the app: typed access to the app and its session."""

    @property
    def nube(self) -> NubeApp:
        return self.app  # type: ignore[return-value]

    @property
    def session(self) -> Session:
        assert self.nube.session is not None
        return self.nube.session


class ListScreen(NubeScreen):
    AUTO_FOCUS = "ResourceTable"
    DETAILS_ON_ENTER: ClassVar[bool] = True
    REFRESH_SECONDS: ClassVar[float] = 5.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "Refresh"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def tables(self) -> dict[str, tuple[str, Columns, Callable[[Session], list[Row]]]]:
        """table id -> (tab label, columns, fetch)"""
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        yield Header()
        yield SectionBar(id="sections")
        yield Input(
            placeholder="filter (Enter to keep, Esc to clear)", id="filter", classes="hidden"
        )
        specs = self.tables()
        if len(specs) == 1:
            ((table_id, (_, columns, _)),) = specs.items()
            yield ResourceTable(columns, id=table_id)
        else:
            with TabbedContent():
                for table_id, (label, columns, _) in specs.items():
                    with TabPane(label, id=f"tab-{table_id}"):
                        yield ResourceTable(columns, id=table_id)
        yield Static("", id="detail", markup=False)
        yield from self.compose_extra()
        yield Footer(compact=True)

    def compose_extra(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.set_interval(self.REFRESH_SECONDS, self.auto_reload)
        self.action_reload()

    def on_screen_resume(self) -> None:
        self.query_one(SectionBar).update_sections()
        self.action_reload()

    def auto_reload(self) -> None:
        if self.is_current:
            self.action_reload()

    def action_reload(self) -> None:
        if self.nube.session is None:
            return
        for table_id, (_, _, fetch) in self.tables().items():
            table = self.query_one(f"#{table_id}", ResourceTable)
            self.nube.call(fetch, table.sync, group=f"{self.id}-{table_id}")

    def table(self, table_id: str | None = None) -> ResourceTable:
        if table_id is None:
            return self.query(ResourceTable).first() if len(self.tables()) == 1 else self.active()
        return self.query_one(f"#{table_id}", ResourceTable)

    def active(self) -> ResourceTable:
        tabs = self.query_one(TabbedContent)
        pane = tabs.active.removeprefix("tab-")
        return self.query_one(f"#{pane}", ResourceTable)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.add_class("hidden")
        self.table().focus()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        for table in self.query(ResourceTable):
            table.set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def filter_kept(self) -> None:
        self.table().focus()

    @on(ResourceTable.RowSelected)
    def open_details(self, event: ResourceTable.RowSelected) -> None:
        table = event.data_table
        if isinstance(table, ResourceTable) and self.DETAILS_ON_ENTER:
            row = table.rows_by_key.get(str(event.row_key.value))
            if row is not None:
                name = row.get("name") or row.get("id", "")
                self.app.push_screen(DetailsDialog(str(name), row))

    @on(ResourceTable.RowHighlighted)
    def show_detail(self, event: ResourceTable.RowHighlighted) -> None:
        table = event.data_table
        if isinstance(table, ResourceTable) and event.row_key.value is not None:
            row = table.rows_by_key.get(str(event.row_key.value))
            if row is not None:
                self.query_one("#detail", Static).update(self.detail(row))

    def detail(self, row: Row) -> str:
        return f"id {row.get('id', '')}"

    def selected(self, what: str = "item") -> Row | None:
        row = self.table().selected
        if row is None:
            self.notify(f"no {what} selected", severity="warning")
        return row

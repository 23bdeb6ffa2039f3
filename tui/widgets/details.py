"""Every field of one resource, as the API returned it (Enter on a row)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


def flat(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class DetailsDialog(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("enter", "dismiss(None)", "Close", show=False),
    ]

    def __init__(self, title: str, row: dict[str, Any]) -> None:
        super().__init__()
        self.title_text, self.row = title, row

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog details"):
            yield Label(self.title_text, classes="dialog-title")
            width = max((len(k) for k in self.row), default=0)
            lines = [f"{k.ljust(width)}  {flat(v)}" for k, v in sorted(self.row.items())]
            yield Static("\n".join(lines), markup=False, id="fields")

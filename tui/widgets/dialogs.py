"""Modal dialogs: a yes/no confirmation and a small form (inputs and selects) returning its values."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel"), Binding("y", "dismiss(True)", "Yes")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(classes="buttons"):
                yield Button("Yes", variant="error", id="yes", compact=True)
                yield Button("No", variant="primary", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def answer(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    value: str = ""
    options: list[tuple[str, str]] | None = None  # a Select when given: (label, value)
    password: bool = False
    required: bool = True
    placeholder: str = ""
    blank: bool = field(default=False)  # a Select that may be left empty


class FormDialog(ModalScreen[dict[str, str] | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, fields: list[Field], submit: str = "OK") -> None:
        super().__init__()
        self.title_text, self.fields, self.submit_label = title, fields, submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with Grid(classes="form"):
                for f in self.fields:
                    yield Label(f.label)
                    if f.options is not None:
                        value = f.value if f.value in {v for _, v in f.options} else Select.NULL
                        blank = f.blank or not f.options
                        yield Select(
                            f.options, id=f.name, allow_blank=blank, value=value, compact=True
                        )
                    else:
                        yield Input(f.value, id=f.name, password=f.password,
                                    placeholder=f.placeholder, compact=True)  # fmt: skip
            with Horizontal(classes="buttons"):
                yield Button(self.submit_label, variant="primary", id="submit", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in self.fields:
            if f.options is not None:
                v = self.query_one(f"#{f.name}", Select).value
                out[f.name] = "" if v is Select.NULL or v is None else str(v)
            else:
                out[f.name] = self.query_one(f"#{f.name}", Input).value.strip()
        return out

    def action_submit(self) -> None:
        values = self.values()
        missing = [
            f.label for f in self.fields if f.required and not f.blank and not values[f.name]
        ]
        if missing:
            self.notify(f"{', '.join(missing)}: required", severity="warning")
            return
        self.dismiss(values)

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#submit")
    def submit_pressed(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#cancel")
    def cancel_pressed(self) -> None:
        self.dismiss(None)

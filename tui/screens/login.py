"""The login form, shown when clouds.yaml / OS_* give no complete credentials."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Button, Footer, Header, Input, Label

from tui.credentials import Credentials
from tui.screens.base import NubeScreen

FIELDS = (
    ("auth_url", "Auth URL", False),
    ("username", "User", False),
    ("password", "Password", True),
    ("project_name", "Project", False),
    ("user_domain", "Domain", False),
)


class LoginScreen(NubeScreen):
    def __init__(self, creds: Credentials | None) -> None:
        super().__init__(id="login")
        self.creds = creds or Credentials("", "", "")

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="dialog login"):
            yield Label("Log in to Nube", classes="dialog-title")
            with Grid(classes="form"):
                for name, label, secret in FIELDS:
                    yield Label(label)
                    yield Input(
                        str(getattr(self.creds, name)), id=name, password=secret, compact=True
                    )
            yield Button("Log in", variant="primary", id="submit", compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        for name, _, _ in FIELDS:
            box = self.query_one(f"#{name}", Input)
            if not box.value:
                box.focus()
                break

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def submit(self) -> None:
        values = {name: self.query_one(f"#{name}", Input).value.strip() for name, _, _ in FIELDS}
        creds = Credentials(
            auth_url=values["auth_url"],
            username=values["username"],
            password=self.query_one("#password", Input).value,
            project_name=values["project_name"],
            user_domain=values["user_domain"] or "Default",
            project_domain=values["user_domain"] or "Default",
            region=self.creds.region,
            interface=self.creds.interface,
        )
        if not creds.complete:
            self.notify("auth URL, user and password are required", severity="warning")
            return
        self.query_one("#submit", Button).disabled = True
        self.nube.login(creds)

    def failed(self) -> None:
        self.query_one("#submit", Button).disabled = False

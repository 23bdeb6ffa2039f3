"""`nube tui`: a Textual dashboard over the Nube APIs, one mode per section."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx
from textual.app import App
from textual.binding import Binding, BindingType
from textual.worker import Worker

from tui import resources
from tui.client import ApiError, Session
from tui.credentials import Credentials
from tui.screens.buckets import BucketsScreen
from tui.screens.identity import IdentityScreen
from tui.screens.images import ImagesScreen
from tui.screens.login import LoginScreen
from tui.screens.networks import NetworksScreen
from tui.screens.overview import OverviewScreen
from tui.screens.servers import ServersScreen
from tui.screens.volumes import VolumesScreen
from tui.widgets.dialogs import Field, FormDialog
from tui.widgets.nav import SECTIONS

T = TypeVar("T")


class NubeApp(App[None]):
    TITLE = "Nube"
    ENABLE_COMMAND_PALETTE = False
    CSS_PATH = "app.tcss"
    MODES: ClassVar[dict[str, Any]] = {
        "overview": OverviewScreen,
        "servers": ServersScreen,
        "images": ImagesScreen,
        "volumes": VolumesScreen,
        "networks": NetworksScreen,
        "buckets": BucketsScreen,
        "identity": IdentityScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(str(n), f"section('{name}')", name.capitalize(), show=False)
            for n, name in enumerate(SECTIONS, start=1)
        ),
        Binding("p", "switch_project", "Project"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, creds: Credentials | None = None, workdir: Path | None = None) -> None:
        super().__init__()
        self.creds = creds
        self.session: Session | None = None
        self.workdir = workdir or Path.cwd()

    def on_mount(self) -> None:
        if self.creds is not None and self.creds.complete:
            self.login(self.creds)
        else:
            self.push_screen(LoginScreen(self.creds))

    def login(self, creds: Credentials) -> None:
        def done(session: Session) -> None:
            self.session = session
            self.update_title()
            if isinstance(self.screen, LoginScreen):
                self.pop_screen()
            self.switch_mode("overview")

        self.call(lambda _: open_session(creds), done, needs_session=False)

    def update_title(self) -> None:
        s = self.session
        if s is not None:
            project = s.project.name if s.project else "(unscoped)"
            role = "admin" if s.is_admin else "member"
            self.sub_title = f"{s.user_name} @ {project} [{role}]"
            self.refresh_bindings()

    def call(
        self,
        fn: Callable[[Session], T],
        done: Callable[[T], Any] | None = None,
        *,
        group: str = "api",
        needs_session: bool = True,
    ) -> Worker[None] | None:
        """Run fn(session) in a thread worker; done(result) back on the UI thread, errors as
        notifications carrying the API's message."""
        session = self.session
        if needs_session and session is None:
            return None

        def job() -> None:
            try:
                result = fn(session)  # type: ignore[arg-type]
            except ApiError as exc:
                self.from_thread(self.fail, exc.message, f"Error {exc.status}")
                return
            except httpx.HTTPError as exc:
                self.from_thread(self.fail, str(exc) or type(exc).__name__, "Cannot reach Nube")
                return
            except Exception as exc:  # never a traceback on the screen
                self.from_thread(self.fail, f"{type(exc).__name__}: {exc}", "Error")
                return
            if done is not None:
                self.from_thread(done, result)

        return self.run_worker(job, thread=True, group=group, exit_on_error=False)

    def from_thread(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.call_from_thread(fn, *args)
        except RuntimeError:  # the app is closing
            pass

    def fail(self, message: str, title: str) -> None:
        self.notify(message, title=title, severity="error", markup=False, timeout=10)
        if isinstance(self.screen, LoginScreen):
            self.screen.failed()
        elif self.session is None:
            self.push_screen(LoginScreen(self.creds))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("section", "switch_project"):
            if self.session is None:
                return False
            if parameters and parameters[0] == "identity" and not self.session.is_admin:
                return False
        return True

    def action_section(self, name: str) -> None:
        if self.check_action("section", (name,)):
            self.switch_mode(name)

    def action_switch_project(self) -> None:
        def chosen(values: dict[str, str] | None) -> None:
            if values and values["project"]:
                self.call(lambda s: s.login(values["project"]), self.switched)

        def show(projects: list[dict[str, Any]]) -> None:
            current = self.session.project.id if self.session and self.session.project else ""
            options = [(p["name"], p["id"]) for p in projects]
            field = Field("project", "Project", current, options)
            self.push_screen(FormDialog("Switch project", [field], "Switch"), chosen)

        self.call(resources.my_projects, show)

    def switched(self, session: Session) -> None:
        self.update_title()
        self.notify(f"now in project {session.project.name if session.project else '-'}")
        if self.current_mode == "identity" and not session.is_admin:
            self.switch_mode("overview")
        reload = getattr(self.screen, "action_reload", None)
        if reload is not None:
            reload()

    def on_unmount(self) -> None:
        if self.session is not None:
            self.session.close()


def open_session(creds: Credentials) -> Session:
    session = Session(creds)
    try:
        return session.login()
    except BaseException:
        session.close()
        raise


def run(creds: Credentials | None) -> int:
    NubeApp(creds).run()
    return 0

"""A server's console log, followed: new lines are appended as the guest writes them."""

from __future__ import annotations

import time
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Log
from textual.worker import get_current_worker

from tui import resources
from tui.client import ApiError
from tui.screens.base import NubeScreen

POLL_SECONDS = 2.0


class ConsoleScreen(NubeScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Back")]

    def __init__(self, server_id: str, name: str) -> None:
        super().__init__()
        self.server_id, self.server_name = server_id, name
        self.seen = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Log(id="console", auto_scroll=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"console of {self.server_name}"
        self.run_worker(self.follow, thread=True, group="console", exit_on_error=False)

    def follow(self) -> None:
        worker = get_current_worker()
        session = self.session
        while not worker.is_cancelled:
            try:
                text = resources.console_log(session, self.server_id)
            except ApiError as exc:
                self.nube.from_thread(self.nube.fail, exc.message, f"Error {exc.status}")
                return
            except Exception as exc:  # transport errors: say so and keep following
                text = None
                self.nube.from_thread(self.nube.fail, str(exc), "Cannot reach Nube")
            if text is not None:
                self.nube.from_thread(self.show, text)
            deadline = time.monotonic() + POLL_SECONDS
            while time.monotonic() < deadline and not worker.is_cancelled:
                time.sleep(0.1)

    def show(self, text: str) -> None:
        log = self.query_one(Log)
        if text.startswith(self.seen):
            log.write(text[len(self.seen) :])
        else:  # the console rotated: start over
            log.clear()
            log.write(text)
        self.seen = text

    def action_close(self) -> None:
        self.workers.cancel_group(self, "console")
        self.dismiss()

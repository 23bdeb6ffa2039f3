"""The TUI driven by Textual's Pilot against one real `nube serve` on 127.0.0.1 per session."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from rich.console import Console
from textual.css.query import NoMatches
from textual.message import Message
from textual.notifications import Notification, Notify

from tests.api.harness import ADMIN_PASSWORD, Nube, Tenant
from tui.app import NubeApp
from tui.credentials import Credentials


@pytest.fixture(scope="session")
def nube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nube]:
    server = Nube(tmp_path_factory.mktemp("nube-tui") / "data")
    server.start()
    yield server
    server.stop()


def status_of(url: str, headers: dict[str, str]) -> tuple[int, str]:
    r = requests.get(url, headers=headers, timeout=10)
    return r.status_code, r.text


async def get(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """A plain GET from outside the app, off the event loop."""
    return await asyncio.to_thread(status_of, url, headers)


def creds_of(nube: Nube, tenant: Tenant | None = None) -> Credentials:
    if tenant is None:
        return Credentials(nube.auth_url, "admin", ADMIN_PASSWORD, "admin")
    return Credentials(nube.auth_url, tenant.name, "pw", tenant.name)


@dataclass
class Notes:
    """Every notification the app raised, captured through run_test's message hook."""

    seen: list[Notification] = field(default_factory=list)

    def hook(self, message: Message) -> None:
        if isinstance(message, Notify):
            self.seen.append(message.notification)

    def errors(self) -> list[str]:
        return [n.message for n in self.seen if n.severity == "error"]

    def messages(self) -> list[str]:
        return [n.message for n in self.seen]


async def wait_until(
    what: str, predicate: Callable[[], Any], limit: float = 60.0, step: float = 0.2
) -> Any:
    """Poll while the app keeps running (its workers and timers go on during the sleeps). A widget
    the predicate queries may not be mounted yet (a container's children mount after it): that
    counts as not yet."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except NoMatches:
            value = None
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {limit} s waiting for {what}")


async def logged_in(app: NubeApp) -> None:
    await wait_until("login", lambda: app.session is not None and app.current_mode == "overview")
    await wait_until("the overview", lambda: app.screen.query("#counts"))


def screen_text(app: NubeApp) -> str:
    """The current screen as plain text, as a terminal of the app's size shows it."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system=None, record=True, legacy_windows=False, safe_box=False)  # fmt: skip
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    console.print(update)
    return console.export_text()


MASKS = (
    (re.compile(r"[ \d]{4} ms\b"), "NNNN ms"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S*"), "<time>"),
)


def masked(text: str, names: dict[str, str]) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    for name, replacement in names.items():
        text = text.replace(name, replacement.ljust(len(name)))
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"

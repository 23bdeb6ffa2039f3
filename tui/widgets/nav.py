"""The section bar under the header: the digit that opens each section, the current one marked."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

SECTIONS = ("overview", "servers", "images", "volumes", "networks", "buckets", "identity")


class SectionBar(Static):
    def on_mount(self) -> None:
        self.update_sections()

    def update_sections(self) -> None:
        app = self.app
        session = getattr(app, "session", None)
        admin = session is not None and session.is_admin
        text = Text()
        for n, name in enumerate(SECTIONS, start=1):
            if name == "identity" and not admin:
                continue
            current = app.current_mode == name
            text.append(f" {n} ", style="bold reverse" if current else "bold")
            text.append(name.capitalize() + " ", style="reverse" if current else "")
        self.update(text)

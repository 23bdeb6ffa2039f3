"""The one SQLite database: opened in WAL mode with foreign keys, migrated by each service's set."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations


def open_db(path: Path | str | None) -> Database:
    """Open (creating if needed) the database; None gives a private in-memory one for unit tests."""
    conn = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False)
    db = Database(conn)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 5000")
    if path is not None:
        db.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed row survives power loss, not just a process crash.
        db.execute("PRAGMA synchronous = FULL")
    return db


def migrate(db: Database, sets: Iterable[Migrations]) -> None:
    """Apply every pending migration of every service, each in its own transaction."""
    for migrations in sets:
        migrations.apply(db)

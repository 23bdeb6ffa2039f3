"""The one SQLite database: opened in WAL mode with foreign keys, migrated by each service's set."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 0.25  # seconds between the checkpointer's passes
# The serving connection's own automatic checkpoint, kept as a bound in case the thread falls
# behind: SQLite's default is 1000 pages. It then finds almost every page already copied.
LOOP_CHECKPOINT_PAGES = 10_000
DEFAULT_CHECKPOINT_PAGES = 1000


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


class Checkpointer:
    """Checkpoints the WAL from a thread and a connection of its own.

    By default SQLite checkpoints inside the COMMIT that takes the WAL past 1000 pages: it copies
    the pages into the database file and fsyncs it on the committing thread, which in `nube
    serve` is the event loop (3 to 8 ms here, every few hundred small object PUTs, while every
    request waits). While this runs, a PASSIVE checkpoint (it never blocks the writer or readers)
    copies what the serving connection committed every CHECKPOINT_EVERY seconds, and that
    connection's own automatic checkpoint waits for LOOP_CHECKPOINT_PAGES pages. A PASSIVE
    checkpoint cannot reset the WAL while writes keep coming, so under a steady load the loop's
    checkpoint still runs once per LOOP_CHECKPOINT_PAGES pages; it then has almost nothing left
    to copy. Durability does not change: a commit is durable once the WAL is synced, as before."""

    def __init__(self, db: Database, path: Path, every: float = CHECKPOINT_EVERY) -> None:
        self.db = db
        self.path = path
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.db.execute(f"PRAGMA wal_autocheckpoint = {LOOP_CHECKPOINT_PAGES}")
        self._thread = threading.Thread(target=self._run, name="nube-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.db.execute(f"PRAGMA wal_autocheckpoint = {DEFAULT_CHECKPOINT_PAGES}")

    def _run(self) -> None:
        conn = sqlite3.connect(str(self.path))
        try:
            conn.execute("PRAGMA synchronous = FULL")
            while not self._stop.wait(self.every):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the loop's own checkpoint still bounds the WAL
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()

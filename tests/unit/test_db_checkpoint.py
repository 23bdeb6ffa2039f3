"""The WAL checkpointer on a real database file: committed pages reach the database file from its
thread, not from the committing connection."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlite_utils import Database

from appliance.db import DEFAULT_CHECKPOINT_PAGES, LOOP_CHECKPOINT_PAGES, Checkpointer, open_db


def write(db: Database, rows: int) -> None:
    for _ in range(rows):
        with db.conn:  # one small commit each, as object PUTs are
            db.execute("INSERT INTO t (data) VALUES (?)", [os.urandom(4000)])


def grows(path: Path, above: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while path.stat().st_size <= above:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_thread_moves_committed_pages_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "nube.db"
    db = open_db(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
    db.execute(f"PRAGMA wal_autocheckpoint = {LOOP_CHECKPOINT_PAGES}")
    start = path.stat().st_size
    write(db, 500)  # about 2 MB, far under the loop's own bound: it stays in the WAL
    assert not grows(path, start + 1_000_000, seconds=0.5)
    checkpointer = Checkpointer(db, path, every=0.05)
    checkpointer.start()
    try:
        assert grows(path, start + 1_000_000)  # the thread copied it
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == LOOP_CHECKPOINT_PAGES
        write(db, 500)
        assert grows(path, start + 3_000_000)
    finally:
        checkpointer.stop()
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == DEFAULT_CHECKPOINT_PAGES
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 1000
    db.close()
    reopened = open_db(path)
    assert reopened.execute("SELECT count(*) FROM t").fetchone()[0] == 1000
    assert reopened.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

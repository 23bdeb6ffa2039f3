"""Group commit of object rows on a real SQLite file in WAL mode: writers share one transaction,
are answered only after the WAL is fsync'd, a failing writer loses only its own row and blob, and
the connection is back at synchronous=FULL afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.blobs import Blobs
from appliance.db import open_db
from appliance.objects import commits
from appliance.objects.commits import GroupCommit


def test_group_commit_syncs_wal_before_answering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_db(tmp_path / "nube.db")
    db.execute("CREATE TABLE t (x TEXT)")
    blobs = Blobs(tmp_path / "blobs")
    for name in ("a", "b"):
        blobs.path(name).parent.mkdir(exist_ok=True)
        blobs.path(name).write_bytes(b"data")
    synced: list[str] = []
    real_fsync = commits._fsync_file

    def fsync(path: str) -> None:
        # Nothing is answered before the WAL holding the group's rows is on disk.
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 1
        synced.append(path)
        real_fsync(path)

    monkeypatch.setattr(commits, "_fsync_file", fsync)
    group = GroupCommit(db, blobs)

    def insert() -> str:
        db.execute("INSERT INTO t VALUES ('a')")
        return "ok"

    def fail() -> str:
        db.execute("INSERT INTO t VALUES ('b')")
        raise ValueError("refused")

    async def main() -> list[object]:
        return await asyncio.gather(
            group.run(insert, "a"), group.run(fail, "b"), return_exceptions=True
        )

    ok, failed = asyncio.run(main())
    assert ok == "ok"
    assert isinstance(failed, ValueError)
    assert synced == [str(tmp_path / "nube.db") + "-wal"]
    assert [r[0] for r in db.execute("SELECT x FROM t")] == ["a"]  # the savepoint undid 'b'
    assert blobs.exists("a") and not blobs.exists("b")  # the failed writer's blob is gone
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again for everyone else


def test_group_commit_in_memory_needs_no_wal(tmp_path: Path) -> None:
    db = open_db(None)
    db.execute("CREATE TABLE t (x TEXT)")
    group = GroupCommit(db, Blobs(tmp_path / "blobs"))

    async def main() -> int:
        return await group.run(lambda: db.execute("INSERT INTO t VALUES ('a')").rowcount, "k")

    assert asyncio.run(main()) == 1
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 1

"""Group commit of object rows on a real SQLite file in WAL mode: writers share one transaction,
are answered only after the WAL is fsync'd, a failing writer loses only its own row and blob, and
the connection is back at synchronous=FULL afterwards."""

from __future__ import annotations

import asyncio
import threading
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


def test_groups_committed_during_an_fsync_share_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One WAL fsync in flight: groups that commit while it runs are answered only after a later
    fsync, which begins after their COMMIT and covers all of them."""
    db = open_db(tmp_path / "nube.db")
    db.execute("CREATE TABLE t (x TEXT)")
    group = GroupCommit(db, Blobs(tmp_path / "blobs"))
    started, release = threading.Event(), threading.Event()
    events: list[str] = []

    def fsync(path: str) -> None:
        rows = sorted(r[0] for r in db.execute("SELECT x FROM t"))  # committed before this fsync
        events.append("fsync " + "".join(rows))
        if len(events) == 1:
            started.set()
            assert release.wait(10)
        events.append("synced")

    monkeypatch.setattr(commits, "_fsync_file", fsync)

    async def write(x: str) -> None:
        await group.run(lambda: db.execute("INSERT INTO t VALUES (?)", [x]).rowcount, "")
        events.append("answered " + x)

    async def main() -> None:
        first = asyncio.ensure_future(write("a"))
        assert await asyncio.to_thread(started.wait, 10)  # the first fsync has begun, and blocks
        later = [asyncio.ensure_future(write("b"))]
        await asyncio.sleep(0.01)  # another loop iteration, so another group
        later.append(asyncio.ensure_future(write("c")))
        await asyncio.sleep(0.05)
        assert events == ["fsync a"]  # b and c committed, but neither a second fsync nor answers
        assert sorted(r[0] for r in db.execute("SELECT x FROM t")) == ["a", "b", "c"]
        release.set()
        await asyncio.gather(first, *later)

    asyncio.run(main())
    first_sync = ["fsync a", "synced", "answered a"]
    assert events == [*first_sync, "fsync abc", "synced", "answered b", "answered c"]

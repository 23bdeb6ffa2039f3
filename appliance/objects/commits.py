"""Group commit of object rows: many writers, one transaction, one WAL fsync off the event loop.

Writers whose bodies finish in the same loop iteration share one transaction. With the database
in WAL mode at synchronous=FULL, SQLite would fsync the WAL inside COMMIT, on the event loop,
stalling every request for the few milliseconds the disk takes. Instead the group's COMMIT runs at
synchronous=NORMAL (SQLite writes the WAL frames but does not sync them; checkpoints stay synced)
and the WAL file is then fsync'd in a blob I/O thread; only after that fsync are the writers
answered. An acknowledged write is exactly as durable as with FULL (the same fsync of the same
WAL, and the WAL only ever replays as a prefix of committed transactions); what changes is that
other requests may see a row a few milliseconds before it is durable. Every other transaction on
the connection still commits at the database's own setting, restored right after the group's.

One WAL fsync is in flight at a time. Groups committed while it runs wait for the next one, which
then covers them all: an fsync started after their COMMIT, as each needs, and one disk flush (with
its interrupts and wake-ups) for many writers instead of one per loop iteration.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlite_utils import Database

from appliance.blobs import Blobs

T = TypeVar("T")

_FULL = 2  # PRAGMA synchronous values: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


@dataclass(frozen=True, slots=True)
class _Change(Generic[T]):
    change: Callable[[], T]
    blob: str
    future: asyncio.Future[T]


_Result = tuple[_Change[Any], Any, BaseException | None]  # a change, its value, its error


class GroupCommit:
    def __init__(self, db: Database, blobs: Blobs) -> None:
        self.db = db
        self.blobs = blobs
        self._pending: list[_Change[Any]] = []
        self._unsynced: list[_Result] = []  # committed, waiting for the next WAL fsync
        self._syncing = False
        self._synchronous = int(db.execute("PRAGMA synchronous").fetchone()[0])
        mode = str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        main = next((r[2] for r in db.execute("PRAGMA database_list") if r[1] == "main"), "")
        # Only a file database in WAL mode that asks for FULL has a WAL to sync ourselves.
        self._wal = f"{main}-wal" if main and mode == "wal" and self._synchronous >= _FULL else None

    async def run(self, change: Callable[[], T], blob: str) -> T:
        """Run `change` (row writes) in the next group transaction; return once it is durable.

        If `change` fails or the COMMIT does, `blob` (the new object's file, if any) is deleted
        here, so a cancelled caller never removes a blob that a committed row names."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._drain)
        self._pending.append(_Change(change, blob, future))
        return await asyncio.shield(future)

    def _drain(self) -> None:
        batch, self._pending = self._pending, []
        results: list[_Result] = []
        if self._wal:
            self.db.execute("PRAGMA synchronous = NORMAL")
        try:
            with self.db.atomic():
                for item in batch:
                    try:
                        with self.db.atomic():  # a savepoint: one failed change spares the rest
                            results.append((item, item.change(), None))
                    except Exception as exc:
                        results.append((item, None, exc))
        except Exception as exc:  # the COMMIT itself failed: nothing of the batch is stored
            results = [(item, None, exc) for item in batch]
        finally:
            if self._wal:
                self.db.execute(f"PRAGMA synchronous = {self._synchronous}")
        for item, _value, error in results:
            if error is not None and item.blob:
                self.blobs.delete(item.blob)
        if self._wal and any(error is None for _, _, error in results):
            self._unsynced += results
            if not self._syncing:
                self._flush()
        else:
            _answer(results, None)

    def _flush(self) -> None:
        """fsync the WAL for every group committed so far; answer them when it is done."""
        assert self._wal is not None
        covered, self._unsynced = self._unsynced, []
        self._syncing = True
        synced = asyncio.get_running_loop().run_in_executor(self.blobs.io, _fsync_file, self._wal)
        synced.add_done_callback(lambda f: self._synced(covered, f.exception()))

    def _synced(self, covered: list[_Result], failed: BaseException | None) -> None:
        self._syncing = False
        _answer(covered, failed)
        if self._unsynced:
            self._flush()


def _answer(results: list[_Result], failed: BaseException | None) -> None:
    # A failed WAL fsync leaves the rows committed but maybe not durable: their writers get the
    # error, and their blobs stay (the rows name them).
    for item, value, error in results:
        if item.future.done():
            continue
        if error is not None or failed is not None:
            item.future.set_exception(error or failed)  # type: ignore[arg-type]
        else:
            item.future.set_result(value)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

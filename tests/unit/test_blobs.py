"""The blob write pipeline on a real directory: order of bytes and hashes across batches in
flight, background syncs of long writes, failures that leave no file, placing under a key."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance import blobs as blobs_module
from appliance.blobs import Blobs

MiB = 1 << 20


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
        if i % (4 * MiB) == 0:
            await asyncio.sleep(0)  # let workers run, as a network stream would


class Recorder:
    """A hash-like that keeps what it was fed, in order."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.seen = bytearray()
        self.fail_at = fail_at

    def update(self, data: bytes, /) -> None:
        if self.fail_at is not None and len(self.seen) + len(data) > self.fail_at:
            raise OSError("hash failed")
        self.seen += data


def test_many_batches_in_flight_keep_bytes_and_digests_in_order(tmp_path: Path) -> None:
    store = Blobs(tmp_path / "blobs")
    data = os.urandom(23 * MiB + 12345)  # many batches, and a last partial one
    recorder = Recorder()
    written = asyncio.run(store.write(chunks(data), extra=[recorder], key="k1"))
    assert written.path == store.path("k1") and written.path.read_bytes() == data
    assert written.size == len(data)
    assert written.md5 == hashlib.md5(data).hexdigest()
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert written.sha512 == hashlib.sha512(data).hexdigest()
    assert bytes(recorder.seen) == data
    assert not list(store.tmp.iterdir())


def test_long_writes_sync_in_the_background_while_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(blobs_module, "SYNC_EVERY", 4 * MiB)
    monkeypatch.setattr(blobs_module.os, "fdatasync", counting)
    store = Blobs(tmp_path / "blobs")
    data = os.urandom(20 * MiB)
    written = asyncio.run(store.write(chunks(data), algorithms=("md5",)))
    assert written.path.read_bytes() == data
    assert 1 <= len(synced) <= 5


def test_a_failing_hash_fails_the_write_and_leaves_no_file(tmp_path: Path) -> None:
    store = Blobs(tmp_path / "blobs")
    data = os.urandom(12 * MiB)
    with pytest.raises(OSError, match="hash failed"):
        asyncio.run(store.write(chunks(data), extra=[Recorder(fail_at=5 * MiB)], key="k2"))
    assert not store.path("k2").exists()
    assert not list(store.tmp.iterdir())


def test_an_empty_body_is_an_empty_blob(tmp_path: Path) -> None:
    store = Blobs(tmp_path / "blobs")
    written = asyncio.run(store.write(chunks(b""), key="empty"))
    assert written.path.read_bytes() == b"" and written.md5 == hashlib.md5(b"").hexdigest()


def test_a_cancelled_write_leaves_no_file(tmp_path: Path) -> None:
    store = Blobs(tmp_path / "blobs")

    async def endless() -> AsyncIterator[bytes]:
        block = os.urandom(MiB)
        while True:
            yield block
            await asyncio.sleep(0)

    async def run() -> None:
        task = asyncio.create_task(store.write(endless(), key="k3"))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert not store.path("k3").exists()
    assert not list(store.tmp.iterdir())


def test_drop_deletes_in_the_background_and_survives_a_missing_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Blobs(tmp_path / "blobs")
    kept = asyncio.run(store.write(chunks(b"keep"), key="kept"))
    gone = [
        asyncio.run(store.write(chunks(os.urandom(MiB)), key=f"gone{i}")).path for i in range(3)
    ]
    store.drop([])  # nothing to do, no thread hop
    store.drop(["gone0", "never-written", "gone1"])
    store.drop(["gone2", "bad/key"])  # a bad key is logged; the rest are still deleted
    store.io.shutdown(wait=True)  # the drops have run
    assert not any(p.exists() for p in gone)
    assert kept.path.read_bytes() == b"keep"
    assert "could not delete blob bad/key" in caplog.text

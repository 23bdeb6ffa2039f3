"""The blob write pipeline on a real directory: order of bytes and hashes across batches in
flight, background syncs of long writes, failures that leave no file, placing under a key, and
large blobs written and read past the page cache (O_DIRECT), on this machine's own filesystem."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance import blob_files
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

    monkeypatch.setattr(blob_files, "SYNC_EVERY", 4 * MiB)
    monkeypatch.setattr(blob_files.os, "fdatasync", counting)
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


def direct_flags(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int]]:
    """Record, for each write the sink makes, whether its file was open with O_DIRECT, and the
    length written."""
    seen: list[tuple[bool, int]] = []
    real = blob_files.Sink._write_all

    def recording(sink: blob_files.Sink, data: bytes | memoryview) -> None:
        direct = bool(fcntl.fcntl(sink.fd, fcntl.F_GETFL) & os.O_DIRECT)
        seen.append((direct, len(data)))
        real(sink, data)

    monkeypatch.setattr(blob_files.Sink, "_write_all", recording)
    return seen


async def odd_chunks(data: bytes) -> AsyncIterator[bytes]:
    """Pieces of uneven sizes, so no batch ends on an aligned offset."""
    at, size = 0, 65_537
    while at < len(data):
        yield data[at : at + size]
        at, size = at + size, 3 * size % 200_003 + 1


def test_a_large_blob_is_written_with_o_direct_and_its_tail_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = direct_flags(monkeypatch)
    store = Blobs(tmp_path / "blobs")
    data = os.urandom(9 * MiB + 777)
    written = asyncio.run(store.write(odd_chunks(data), key="big"))
    assert written.path.read_bytes() == data
    assert written.md5 == hashlib.md5(data).hexdigest()
    direct = [size for is_direct, size in seen if is_direct]
    assert sum(direct) == len(data) - len(data) % blob_files.ALIGN
    assert all(size % blob_files.ALIGN == 0 for size in direct)
    assert [size for is_direct, size in seen if not is_direct] == [len(data) % blob_files.ALIGN]
    assert seen[-1][0] is False  # the tail

    seen.clear()  # a blob of one batch is written as it comes, through the page cache
    small = os.urandom(300_001)
    assert asyncio.run(store.write(odd_chunks(small), key="small")).path.read_bytes() == small
    assert [is_direct for is_direct, _ in seen] == [False] * len(seen) and seen


def test_a_filesystem_without_o_direct_gets_buffered_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fcntl.fcntl

    def refusing(fd: int, command: int, arg: int = 0) -> int:
        if command == fcntl.F_SETFL and arg & os.O_DIRECT:
            raise OSError(errno.EINVAL, "no O_DIRECT here")
        return real(fd, command, arg)

    monkeypatch.setattr(blob_files.fcntl, "fcntl", refusing)
    seen = direct_flags(monkeypatch)
    store = Blobs(tmp_path / "blobs")
    data = os.urandom(5 * MiB + 3)
    assert asyncio.run(store.write(odd_chunks(data), key="k")).path.read_bytes() == data
    assert seen and not any(is_direct for is_direct, _ in seen)


def test_a_refused_direct_write_goes_on_buffered_from_the_same_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.write
    calls = {"direct": 0}

    def short_then_refused(fd: int, data: bytes | memoryview) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            calls["direct"] += 1
            if calls["direct"] == 2:  # a short write, as a nearly full disk may give
                return real(fd, memoryview(data)[:8192])
            if calls["direct"] == 3:  # then a disk that wants more alignment
                raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data)

    monkeypatch.setattr(blob_files.os, "write", short_then_refused)
    store = Blobs(tmp_path / "blobs")
    data = os.urandom(7 * MiB + 5)
    written = asyncio.run(store.write(odd_chunks(data), key="k"))
    assert written.path.read_bytes() == data and written.md5 == hashlib.md5(data).hexdigest()
    assert calls["direct"] == 3  # no direct write after the refusal


def test_large_blobs_are_read_with_o_direct_at_any_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Blobs(tmp_path / "blobs")
    data = os.urandom(9 * MiB + 4097)  # more than two READAHEADs
    asyncio.run(store.write(odd_chunks(data), key="big"))
    asyncio.run(store.write(odd_chunks(data[:5000]), key="small"))
    modes: list[bool] = []
    real = os.preadv

    def recording(fd: int, buffers: list[memoryview], offset: int) -> int:
        modes.append(bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT))
        return real(fd, buffers, offset)

    monkeypatch.setattr(blob_files.os, "preadv", recording)

    async def read(key: str, start: int = 0, end: int | None = None) -> bytes:
        return b"".join([piece async for piece in store.read(key, start, end)])

    assert asyncio.run(read("big")) == data
    ranges = [(1, 2), (4095, 4097), (MiB - 3, 2 * MiB + 5), (4 * MiB - 9, 9 * MiB), (7, None)]
    for start, end in [*ranges, (9 * MiB, None), (9 * MiB + 4096, 9 * MiB + 4097)]:
        assert asyncio.run(read("big", start, end)) == data[start:end]
    assert asyncio.run(store.read_small("big", 4000, 9000)) == data[4000:9000]
    assert modes and all(modes)
    modes.clear()
    assert asyncio.run(read("small", 10)) == data[10:5000]
    assert modes == []  # read through the page cache


def test_a_refused_direct_read_goes_on_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Blobs(tmp_path / "blobs")
    data = os.urandom(2 * MiB + 3)
    asyncio.run(store.write(odd_chunks(data), key="big"))

    def refusing(fd: int, buffers: list[memoryview], offset: int) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(blob_files.os, "preadv", refusing)

    async def read() -> bytes:
        return b"".join([piece async for piece in store.read("big", 5)])

    assert asyncio.run(read()) == data[5:]

"""Blob writes that read their body themselves (`Direct`), on a real directory, from a real
socket pair: bytes and digests, which thread does the work, and failures that leave no file."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.blobs import CHUNK, Blobs, BlobTooLarge, Direct
from appliance.upload_order import LOW, may_reprioritise

MiB = 1 << 20


class PairBody:
    """A RawBody whose client is the other end of a socket pair, sending `data[:sent]` and then
    closing (or, with `stall`, going quiet)."""

    def __init__(self, data: bytes, sent: int | None = None, stall: bool = False) -> None:
        self.size = len(data)
        self.ours, self.theirs = socket.socketpair()
        self.closed = self.aborted = False
        self.thread = threading.Thread(target=self._send, args=(data[:sent], stall))
        self.thread.start()

    def _send(self, data: bytes, stall: bool) -> None:
        self.theirs.sendall(data)
        if not stall:
            self.theirs.shutdown(socket.SHUT_WR)

    def readinto(self, view: memoryview) -> None:
        at = 0
        while at < len(view):
            n = self.ours.recv_into(view[at:], len(view) - at, socket.MSG_WAITALL)
            if n == 0:
                raise ConnectionError("the client went away")
            at += n

    def abort(self) -> None:
        self.aborted = True
        self.ours.shutdown(socket.SHUT_RD)

    def close(self) -> None:
        self.closed = True
        self.thread.join()
        self.ours.close()
        self.theirs.close()


class Threads:
    """A hash-like that keeps its bytes and the names of the threads that fed it."""

    def __init__(self) -> None:
        self.seen = bytearray()
        self.names: set[str] = set()

    def update(self, data: bytes | memoryview, /) -> None:
        self.seen += data
        self.names.add(threading.current_thread().name.split("_")[0])


async def never() -> AsyncIterator[bytes]:
    raise AssertionError("the stream was read")
    yield b""


def direct(body: PairBody | None, size: int, stream: AsyncIterator[bytes] | None = None) -> Direct:
    return Direct(stream or never(), size, lambda: body)


def leftovers(store: Blobs) -> list[Path]:
    return [p for p in store.root.rglob("*") if p.is_file()]


def test_a_blob_alone_spreads_its_digests_and_blobs_together_work_in_the_reading_thread(
    tmp_path: Path,
) -> None:
    store = Blobs(tmp_path / "blobs")
    datas = [os.urandom(n) for n in (9 * MiB + 123, 3 * MiB, 2 * MiB + 4097)]
    bodies = [PairBody(d) for d in datas]
    hashes = [Threads() for _ in datas]

    async def write_all() -> list[object]:
        return await asyncio.gather(
            *(
                store.write(direct(b, b.size), None, ("md5", "sha256"), [h], key=f"k{i}")
                for i, (b, h) in enumerate(zip(bodies, hashes, strict=True))
            )
        )

    written = asyncio.run(write_all())
    for data, w, h, b in zip(datas, written, hashes, bodies, strict=True):
        assert w.path.read_bytes() == data  # type: ignore[attr-defined]
        assert w.md5 == hashlib.md5(data).hexdigest()  # type: ignore[attr-defined]
        assert w.sha256 == hashlib.sha256(data).hexdigest()  # type: ignore[attr-defined]
        assert h.seen == data and b.closed and not b.aborted
    # the first, alone when it began, hands batches to the writing lane; the others do it all
    # where they read
    assert hashes[0].names == {"nube-blob-io"}
    assert hashes[1].names == hashes[2].names == {"nube-recv"}
    assert sorted(p.name for p in leftovers(store)) == ["k0", "k1", "k2"]
    assert len(store.buffers.free[CHUNK]) >= 3  # reading buffers go back to the pool


@pytest.mark.parametrize("sent", [0, MiB + 5, 5 * MiB])
def test_a_client_that_stops_sending_fails_the_write_and_leaves_no_file(
    tmp_path: Path, sent: int
) -> None:
    store = Blobs(tmp_path / "blobs")
    body = PairBody(os.urandom(6 * MiB), sent)
    with pytest.raises(ConnectionError):
        asyncio.run(store.write(direct(body, body.size), key="k"))
    assert body.closed and leftovers(store) == []


def test_a_cancelled_write_wakes_the_reading_thread_and_leaves_no_file(tmp_path: Path) -> None:
    store = Blobs(tmp_path / "blobs")
    body = PairBody(os.urandom(4 * MiB), sent=2 * MiB, stall=True)

    async def cancel_while_waiting() -> None:
        task = asyncio.ensure_future(store.write(direct(body, body.size), key="k"))
        await asyncio.sleep(0.3)  # the reading thread now waits for the rest
        task.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 5

    asyncio.run(cancel_while_waiting())
    assert body.aborted and body.closed and leftovers(store) == []


class Tids:
    """A hash-like that keeps the bytes it was fed and the thread that fed them."""

    def __init__(self, until: int) -> None:
        self.seen = 0
        self.tid = 0
        self.until, self.reached = until, threading.Event()

    def update(self, data: bytes | memoryview, /) -> None:
        self.seen += len(data)
        self.tid = threading.get_native_id()
        if self.seen >= self.until:
            self.reached.set()


def test_bodies_read_at_once_go_oldest_first(tmp_path: Path) -> None:
    if not may_reprioritise():
        pytest.skip("this process may not give a thread its priority back (needs CAP_SYS_NICE)")
    store = Blobs(tmp_path / "blobs")
    store.ranks.cores = lambda: 1  # as if the server had one core
    base = os.getpriority(os.PRIO_PROCESS, 0)
    bodies = [PairBody(os.urandom(4 * MiB), sent=2 * MiB, stall=True) for _ in range(4)]
    fed = [Tids(2 * MiB) for _ in bodies]

    async def write_and_look() -> list[int]:
        tasks = [
            asyncio.ensure_future(store.write(direct(b, b.size), None, ("md5",), [t], key=f"k{i}"))
            for i, (b, t) in enumerate(zip(bodies, fed, strict=True))
        ]
        for t in fed[1:]:  # then each reading thread waits for the rest of its body
            assert await asyncio.to_thread(t.reached.wait, 10)
        nices = [os.getpriority(os.PRIO_PROCESS, t.tid) for t in fed[1:]]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return nices

    # the first, alone when it began, has lanes of its own; of the three read in their own
    # threads the oldest keeps its priority (one core), the others wait behind it
    assert asyncio.run(write_and_look()) == [base, base + LOW, base + LOW]
    # and every reading thread, back in its pool, has its priority back
    assert [os.getpriority(os.PRIO_PROCESS, t.tid) for t in fed[1:]] == [base] * 3
    assert leftovers(store) == []


def test_a_body_past_the_limit_is_refused_before_it_is_taken(tmp_path: Path) -> None:
    store = Blobs(tmp_path / "blobs")
    taken: list[bool] = []
    body = Direct(never(), 3 * MiB, lambda: taken.append(True))  # type: ignore[arg-type,func-returns-value]
    with pytest.raises(BlobTooLarge):
        asyncio.run(store.write(body, limit=3 * MiB - 1, key="k"))
    assert taken == [] and leftovers(store) == []


def test_a_body_that_cannot_be_taken_is_read_as_a_stream(tmp_path: Path) -> None:
    store = Blobs(tmp_path / "blobs")
    data = os.urandom(2 * MiB + 9)

    async def stream() -> AsyncIterator[bytes]:
        for at in range(0, len(data), 64 * 1024):
            yield data[at : at + 64 * 1024]

    written = asyncio.run(store.write(direct(None, len(data), stream()), key="k"))
    assert written.path.read_bytes() == data
    assert written.md5 == hashlib.md5(data).hexdigest()

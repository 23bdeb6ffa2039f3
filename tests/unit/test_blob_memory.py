"""What the blob layer keeps in memory between blobs, on this machine's own filesystem and glibc:
direct I/O buffers reused from one blob to the next and given back once the server is idle, a
reader's buffer never handed on while a read still fills it, digests fed by the writing thread
when several blobs are written at once, and malloc settings that stop 1 MiB buffers from
faulting in new pages."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from appliance import blob_files, blobs, memory
from appliance.blobs import Blobs
from tests.unit.test_blobs import chunks, odd_chunks

MiB = 1 << 20


def test_direct_io_buffers_are_reused_and_given_back_when_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs, "IDLE", 1.0)
    trims: list[int] = []
    monkeypatch.setattr(memory, "trim", lambda: trims.append(1))
    store = Blobs(tmp_path / "blobs")
    taken: list[tuple[int, int]] = []
    real_take = store.buffers.take

    def take(size: int) -> Any:
        buffer = real_take(size)
        taken.append((size, id(buffer)))
        return buffer

    monkeypatch.setattr(store.buffers, "take", take)
    data = os.urandom(5 * MiB + 11)

    async def run() -> None:
        for key in ("a", "b"):
            written = await store.write(odd_chunks(data), key=key)
            assert written.path.read_bytes() == data
        assert [size for size, _ in taken] == [blob_files.STAGING] * 2
        assert taken[0][1] == taken[1][1]  # the second blob wrote from the first one's buffer
        assert b"".join([p async for p in store.read("a", 3)]) == data[3:]
        assert b"".join([p async for p in store.read("b", 5)]) == data[5:]
        assert [size for size, _ in taken[2:]] == [blob_files.READ_STAGING] * 2
        assert taken[2][1] == taken[3][1]
        await asyncio.sleep(0.4)  # blob I/O again before IDLE: no release yet
        await store.write(chunks(data), key="c")
        await asyncio.sleep(0.4)
        assert trims == [] and len(store.buffers.free[blob_files.STAGING]) == 1
        await asyncio.sleep(1.0)  # IDLE since the last write
        await asyncio.wrap_future(store.io.submit(lambda: None))  # behind the release

    asyncio.run(run())
    assert trims == [1]
    assert store.buffers.free == {}


def test_buffers_keep_no_more_than_asked() -> None:
    buffers = blob_files.Buffers([blob_files.STAGING], keep=2)
    held = [buffers.take(blob_files.STAGING) for _ in range(3)]
    assert all(len(b) == blob_files.STAGING for b in held)
    for b in held:
        buffers.give(b)
    buffers.give(buffers.take(3 * MiB))  # a size the pipeline does not reuse
    assert buffers.free == {blob_files.STAGING: held[:2]}
    assert buffers.take(blob_files.STAGING) is held[1]
    buffers.release()
    assert buffers.free == {}


def test_an_abandoned_read_keeps_its_buffer_until_the_read_in_flight_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Blobs(tmp_path / "blobs")
    data = os.urandom(9 * MiB)
    gate, started = threading.Event(), threading.Event()
    real_read = blob_files.Reader.read
    calls = 0

    def slow_second_read(reader: blob_files.Reader, want: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first step is read while opening; hold the next one
            started.set()
            assert gate.wait(10)
        return real_read(reader, want)

    async def run() -> None:
        await store.write(chunks(data), key="big")
        monkeypatch.setattr(blob_files.Reader, "read", slow_second_read)

        async def consume() -> None:
            async for _ in store.read("big"):
                pass

        task = asyncio.create_task(consume())
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the reader's buffer is still being filled: nobody else may take it yet
        assert not store.buffers.free.get(blob_files.READ_STAGING)
        gate.set()
        await asyncio.wrap_future(store.io.submit(lambda: None))
        for _ in range(100):
            if store.buffers.free.get(blob_files.READ_STAGING):
                break
            await asyncio.sleep(0.01)
        assert len(store.buffers.free[blob_files.READ_STAGING]) == 1  # given back once done

    asyncio.run(run())


def test_blobs_written_together_feed_their_digests_in_the_writing_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spread: list[bool] = []
    real_init = blob_files.Sink.__init__

    def recording(sink: blob_files.Sink, *args: Any) -> None:
        real_init(sink, *args)
        spread.append(bool(sink.lanes))

    monkeypatch.setattr(blob_files.Sink, "__init__", recording)
    store = Blobs(tmp_path / "blobs")
    bodies = [os.urandom(6 * MiB + i) for i in range(4)]

    async def run() -> list[blobs.Written]:
        together = await asyncio.gather(
            *(
                store.write(odd_chunks(b), algorithms=("md5", "sha256"), key=f"k{i}")
                for i, b in enumerate(bodies)
            )
        )
        alone = await store.write(chunks(bodies[0]), algorithms=("md5", "sha256"), key="alone")
        return [*together, alone]

    written = asyncio.run(run())
    assert spread == [True, False, False, False, True]
    for w, body in zip(written, [*bodies, bodies[0]], strict=True):
        assert w.path.read_bytes() == body
        assert w.md5 == hashlib.md5(body).hexdigest()
        assert w.sha256 == hashlib.sha256(body).hexdigest()


CHURN = """
import resource, sys
from appliance import memory

def churn():
    blocks = [b"x" * (1 << 20) for _ in range(16)]  # 16 MiB of 1 MiB buffers, touched
    del blocks

def faults(rounds):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        churn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

if sys.argv[1] == "tuned":
    memory.tune()
churn()
steady = faults(20)
memory.trim()
print(steady, faults(1))
"""


def test_tuned_malloc_reuses_1_mib_buffers_and_trim_gives_them_back() -> None:
    def run(mode: str) -> tuple[int, int]:
        out = subprocess.run(
            [sys.executable, "-c", CHURN, mode],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parents[2],
        ).stdout.split()
        return int(out[0]), int(out[1])

    default_steady, _ = run("default")
    tuned_steady, after_trim = run("tuned")
    pages = 20 * 16 * MiB // os.sysconf("SC_PAGESIZE")
    assert default_steady > pages // 2  # glibc's own thresholds: the heap shrinks and refaults
    assert tuned_steady < 200  # the same churn from memory the heap kept
    assert after_trim > 16 * MiB // os.sysconf("SC_PAGESIZE") // 2  # trim gave it back


def test_a_batch_larger_than_the_staging_buffer_is_written_whole(tmp_path: Path) -> None:
    store = Blobs(tmp_path / "blobs")
    data = os.urandom(10 * MiB + 5)
    written = asyncio.run(store.write(chunks(data, 3 * MiB + 1), key="big"))  # 3 MiB batches
    assert written.path.read_bytes() == data
    assert written.md5 == hashlib.md5(data).hexdigest()
    # it staged every batch in a buffer larger than the standard one, which is not kept
    assert store.buffers.free == {}

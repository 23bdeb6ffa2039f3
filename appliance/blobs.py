"""The blob layer: immutable byte files under <data-dir>/blobs, shared by images and the object store.

A blob is written to a temp file in blobs/tmp, hashed while it streams, fsync'd, then renamed into
place (and the directory fsync'd), so a crash leaves either no blob or a whole one. Callers commit
their metadata row only after `commit`, and delete blobs whose rows they drop. Large blobs are
written and read with O_DIRECT, past the page cache (appliance.blob_files says why).
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import uuid
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from appliance import memory
from appliance.blob_files import (
    CHUNK,
    DEPTH,
    READ_STAGING,
    STAGING,
    Buffers,
    Hash,
    Hasher,
    Reader,
    Sink,
)
from appliance.upload_order import Ranks

__all__ = ["CHUNK", "BlobTooLarge", "Blobs", "Direct", "Hash", "RawBody", "Written", "digest"]

log = logging.getLogger(__name__)

IDLE = 2.0  # seconds without blob I/O after which kept buffers and free heap go back


class BlobTooLarge(Exception):
    """The stream went past the byte limit the caller set; nothing was kept."""


@dataclass(frozen=True, slots=True)
class Written:
    """A fully written, fsync'd temp file, not yet committed under a key."""

    path: Path
    size: int
    md5: str
    sha256: str
    sha512: str
    # Hex digests of the algorithms asked for; md5/sha256/sha512 above are "" when not asked for.
    digests: dict[str, str] = field(default_factory=dict)


ALL_DIGESTS = ("md5", "sha256", "sha512")


class RawBody(Protocol):
    """A body of `size` bytes read by a blocking `readinto` (appliance.http_protocol.SocketBody)."""

    size: int

    def readinto(self, view: memoryview) -> None:
        """Fill `view` with the next bytes (in a thread), or raise."""

    def abort(self) -> None:
        """Make a `readinto` blocked in another thread raise."""

    def close(self) -> None:
        """Done reading (on the event loop), whether every byte was read or not."""


class Direct:
    """A request body of a known `size` that a blob write may `take` to read it itself, from the
    socket into its own page-aligned buffers: the bytes are then hashed and written to the disk
    from where they landed, with no copy. Iterated instead, it is the plain `stream`."""

    def __init__(
        self, stream: AsyncIterable[bytes], size: int, take: Callable[[], RawBody | None]
    ) -> None:
        self.stream = stream
        self.size = size
        self._take: Callable[[], RawBody | None] | None = take

    def take(self) -> RawBody | None:
        take, self._take = self._take, None
        return take() if take is not None else None

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._take = None  # read once, one way
        return aiter(self.stream)


def digest(data: bytes, algorithms: Sequence[str], extra: Sequence[Hash] = ()) -> dict[str, str]:
    """Hex digests of `data` for each hashlib algorithm (each `extra` hash is fed it too)."""
    hasher = Hasher(algorithms, extra)
    hasher.update(data)
    return hasher.hexdigests()


def _joined(batch: list[bytes]) -> list[bytes]:
    """One buffer for a batch of chunks: each worker then takes the GIL once per batch rather
    than once per chunk (a hashing thread that waits for the GIL after every 64 KiB chunk
    spends more time waiting than hashing). Costs one memory copy."""
    return [b"".join(batch)] if len(batch) > 1 else batch


def _close_opened(opening: Future[tuple[Reader, bytes]]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result()[0].close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Blobs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="nube-hash")
        # Blob file I/O (writes, fsyncs, renames, reads) runs here rather than in asyncio's
        # default executor (cores + 4 threads, shared with every other blocking call): with many
        # small writes in flight, their fsyncs wait on the disk together (the journal commits
        # them at once) instead of queueing behind each other.
        self.io = ThreadPoolExecutor(max_workers=32, thread_name_prefix="nube-blob-io")
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._dirs: set[Path] = set()  # key directories known to exist
        # threads that read request bodies straight from their sockets (Direct), each waiting on
        # its client; not the I/O pool, whose workers they wait on
        self._recv = ThreadPoolExecutor(max_workers=64, thread_name_prefix="nube-recv")
        self.buffers = Buffers((CHUNK, STAGING, READ_STAGING), keep=48)
        self._busy = 0  # blob reads and writes under way (counted on the event loop)
        self._writing = 0  # of which writes
        self.ranks = Ranks()  # bodies read at once go oldest first
        self._idle: asyncio.TimerHandle | None = None

    def path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad blob key {key!r}")
        return self.root / key[:2] / key

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    async def write(
        self,
        chunks: AsyncIterable[bytes],
        limit: int | None = None,
        algorithms: Sequence[str] = ALL_DIGESTS,
        extra: Sequence[Hash] = (),
        key: str | None = None,
    ) -> Written:
        """Stream `chunks` to a new temp file; BlobTooLarge past `limit` bytes (the file is removed).

        The bytes are hashed with each hashlib `algorithms` (hex digests in the result) and fed to
        every `extra` hash object the caller keeps. With `key`, the finished file is also
        committed under it (as `commit` does, in the same worker thread: one hop fewer) and the
        result's path is the blob's own; a caller that then rejects the bytes `discard`s it."""
        if isinstance(chunks, Direct) and limit is not None and chunks.size > limit:
            raise BlobTooLarge(f"more than {limit} bytes")
        path = self.tmp / f"{uuid.uuid4().hex}.part"
        final = path if key is None else self.path(key)
        place = (lambda p: None) if key is None else (lambda p: self._rename(p, final))
        # a blob written alone spreads its digests over the cores; one of several does not
        spread = self._writing == 0
        sink = Sink(
            path, Hasher(algorithms, extra), self.io, self._pool, place, self.buffers, spread
        )
        self._begin()
        self._writing += 1
        try:
            raw = chunks.take() if isinstance(chunks, Direct) else None
            if raw is not None:
                await self._receive(raw, sink, self.ranks.ticket())
                size = raw.size
            else:
                size = await self._stream(chunks, sink, limit)
        except BaseException:
            # the workers must be done with the file first
            for _ in range(2):  # the second time for a background sync the last write began
                await asyncio.gather(
                    *(asyncio.wrap_future(t) for t in sink.tails()), return_exceptions=True
                )
            sink.close()
            path.unlink(missing_ok=True)
            if final != path:
                final.unlink(missing_ok=True)  # maybe placed before the caller was cancelled
            raise
        finally:
            self._writing -= 1
            self._end()
        digests = sink.hasher.hexdigests()
        return Written(
            final,
            size,
            digests.get("md5", ""),
            digests.get("sha256", ""),
            digests.get("sha512", ""),
            digests,
        )

    async def _stream(self, chunks: AsyncIterable[bytes], sink: Sink, limit: int | None) -> int:
        """Feed `chunks` to the sink in batches of CHUNK bytes; the size written."""
        size = 0
        # A pipeline: while workers write and hash earlier batches (up to DEPTH of them), the
        # loop keeps reading the next from the client, so network, writing and the hashes use
        # both cores.
        inflight: deque[list[Future[None]]] = deque()
        batch: list[bytes] = []
        batched = 0
        async for chunk in chunks:
            size += len(chunk)
            if limit is not None and size > limit:
                raise BlobTooLarge(f"more than {limit} bytes")
            batch.append(chunk)
            batched += len(chunk)
            if batched >= CHUNK:
                inflight.append(sink.submit(_joined(batch)))
                batch, batched = [], 0
                if len(inflight) > DEPTH:
                    for step in inflight.popleft():
                        await asyncio.shield(asyncio.wrap_future(step))
        await asyncio.shield(asyncio.wrap_future(sink.finish(_joined(batch))))
        return size

    async def _receive(self, raw: RawBody, sink: Sink, ticket: int) -> None:
        """Read `raw` in a receiving thread (`_pump`) while the loop serves other requests."""
        pumping = self._recv.submit(self._pump, raw, sink, ticket)
        try:
            await asyncio.shield(asyncio.wrap_future(pumping))
        except BaseException:
            raw.abort()  # a cancelled request: the thread may be waiting for the client
            await asyncio.gather(asyncio.wrap_future(pumping), return_exceptions=True)
            raise
        finally:
            raw.close()

    def _pump(self, raw: RawBody, sink: Sink, ticket: int) -> None:
        """Read `raw` CHUNK bytes at a time into page-aligned buffers from the pool, each handed
        to the sink to hash and write as it is, up to DEPTH of them in flight. One syscall
        fills a buffer, and the thread sleeps in it until the client has sent that much."""
        if not sink.lanes:
            return self._pump_here(raw, sink, ticket)
        inflight: deque[tuple[list[Future[None]], mmap.mmap]] = deque()
        left = raw.size
        while True:
            buffer = self.buffers.take(CHUNK)
            view = memoryview(buffer)[: min(left, CHUNK)]
            raw.readinto(view)
            left -= len(view)
            if not left:
                sink.finish([view], aligned=True).result()
                break
            inflight.append((sink.submit([view], aligned=True), buffer))
            if len(inflight) > DEPTH:
                steps, done = inflight.popleft()
                for step in steps:
                    step.result()
                self.buffers.give(done)
        # the last step ran after every other one: no lane uses these buffers any more
        for _, done in inflight:
            self.buffers.give(done)
        self.buffers.give(buffer)

    def _pump_here(self, raw: RawBody, sink: Sink, ticket: int) -> None:
        """`_pump` for a blob written while others are: each batch is hashed and written in this
        thread, from one buffer. The other blobs' threads keep the cores busy meanwhile, and
        no batch waits for a hand-off to another thread (or wakes one). The oldest of these
        threads go first (appliance.upload_order)."""
        buffer = self.buffers.take(CHUNK)
        left = raw.size
        with self.ranks.running(ticket):
            while left:
                view = memoryview(buffer)[: min(left, CHUNK)]
                raw.readinto(view)
                left -= len(view)
                sink.run([view], last=not left)
        self.buffers.give(buffer)

    def commit(self, written: Written, key: str) -> Path:
        """Move a written temp file into place under `key` (atomic rename, directory fsync'd)."""
        target = self.path(key)
        self._rename(written.path, target)
        return target

    def _rename(self, source: Path, target: Path) -> None:
        if target.parent not in self._dirs:
            target.parent.mkdir(exist_ok=True)
            self._dirs.add(target.parent)
        try:
            os.replace(source, target)
        except FileNotFoundError:  # the directory went away under us: make it again, once
            if not source.exists():
                raise
            target.parent.mkdir(exist_ok=True)
            os.replace(source, target)
        _fsync_dir(target.parent)

    async def place(self, written: Written, key: str) -> Path:
        """`commit` off the event loop (a directory fsync there would stall every request)."""
        return await asyncio.get_running_loop().run_in_executor(self.io, self.commit, written, key)

    def discard(self, written: Written) -> None:
        written.path.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)

    def drop(self, keys: Sequence[str]) -> None:
        """`delete` each of `keys` in a blob I/O thread, without waiting: for blobs no committed
        row names any more. Unlinking a large file frees its extents and page cache (64 ms for
        128 MiB here), which neither the event loop nor the client should wait for; a crash
        before it runs leaves orphans that the start-up sweep removes."""
        if keys:
            self.io.submit(self._delete_all, list(keys))

    def _delete_all(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.delete(key)
            except (OSError, ValueError) as exc:  # the sweep or fsck will find it
                log.warning("could not delete blob %s: %s", key, exc)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of a blob in CHUNK steps (the first step opens the file)."""
        self._begin()
        try:
            reader, data = await self._opened(key, start, end)
        except BaseException:
            self._end()
            raise
        step: Future[bytes] | None = None
        try:
            while data:
                yield data
                if reader.at_end:
                    break
                step = self.io.submit(reader.read, CHUNK)
                data = await asyncio.wrap_future(step)
        finally:
            # a read still running when the consumer went away closes the reader when it ends:
            # its buffer must not go to another reader while this one fills it
            if step is None:
                reader.close()
            else:
                step.add_done_callback(lambda _: reader.close())
            self._end()

    async def read_small(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of a blob at once, in one thread hop (for small objects)."""
        self._begin()
        try:
            reader, data = await self._opened(key, start, end)
        finally:
            self._end()
        reader.close()
        return data

    async def _opened(self, key: str, start: int, end: int | None) -> tuple[Reader, bytes]:
        """A reader and its first step; one the caller stops waiting for is closed when ready."""
        opening = self.io.submit(self._open_read, key, start, end)
        try:
            return await asyncio.wrap_future(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(_close_opened)
            raise

    def _open_read(self, key: str, start: int, end: int | None) -> tuple[Reader, bytes]:
        reader = Reader(self.path(key), start, end, self.buffers)  # the caller closes it
        try:
            return reader, reader.read(CHUNK)  # the reader stops at `end`
        except BaseException:
            reader.close()
            raise

    def _begin(self) -> None:
        self._busy += 1
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _end(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a reader finalized with no loop left: nothing to schedule
                return
            self._idle = loop.call_later(IDLE, self._release)

    def _release(self) -> None:
        """Once blob I/O has stopped for IDLE seconds, give back the buffers it kept and the
        free memory malloc keeps (memory.tune): an idle server stays small."""
        self._idle = None
        if self._busy == 0:
            self.io.submit(self.release)

    def release(self) -> None:
        self.buffers.release()
        memory.trim()

    def keys(self, suffix: str) -> Iterator[str]:
        """Every committed blob key ending in `suffix` (for a caller's orphan sweep)."""
        for sub in self.root.iterdir():
            if sub.is_dir() and sub.name != "tmp":
                for entry in os.scandir(sub):
                    if entry.name.endswith(suffix):
                        yield entry.name

    def sweep_tmp(self) -> int:
        """Remove temp files a crash left behind; returns how many."""
        removed = 0
        for leftover in self.tmp.glob("*.part"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

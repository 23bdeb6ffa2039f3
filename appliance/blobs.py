"""The blob layer: immutable byte files under <data-dir>/blobs, shared by images and the object store.

A blob is written to a temp file in blobs/tmp, hashed while it streams, fsync'd, then renamed into
place (and the directory fsync'd), so a crash leaves either no blob or a whole one. Callers commit
their metadata row only after `commit`, and delete blobs whose rows they drop.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import logging
import os
import uuid
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # write and hash in 1 MiB steps, off the event loop


class Hash(Protocol):
    """Anything hashlib-like that a caller wants fed with the bytes as they stream (CRCs, SHA-1...)."""

    def update(self, data: bytes, /) -> Any: ...


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


class _Hasher:
    def __init__(self, algorithms: Sequence[str], extra: Sequence[Hash]) -> None:
        self.named = {
            name: hashlib.new(name, usedforsecurity=name not in ("md5", "sha1"))
            for name in algorithms
        }
        self.extra = list(extra)
        self.all: list[Hash] = [*self.named.values(), *extra]

    def update(self, data: bytes) -> None:
        for h in self.all:
            h.update(data)

    def hexdigests(self) -> dict[str, str]:
        return {name: h.hexdigest() for name, h in self.named.items()}


def digest(data: bytes, algorithms: Sequence[str], extra: Sequence[Hash] = ()) -> dict[str, str]:
    """Hex digests of `data` for each hashlib algorithm (each `extra` hash is fed it too)."""
    hasher = _Hasher(algorithms, extra)
    hasher.update(data)
    return hasher.hexdigests()


# sync_file_range(2) is not in the os module; without it the final fsync does all the work.
_libc = ctypes.CDLL(None, use_errno=True)
_sync_file_range = getattr(_libc, "sync_file_range", None)
if _sync_file_range is not None:
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
SYNC_FILE_RANGE_WRITE = 2
WRITEBACK = 1 << 20  # start writing to disk every 1 MiB
SYNC_EVERY = 4 << 20  # fdatasync in the background after each 4 MiB (one at a time per blob)
DEPTH = 4  # batches in flight per blob: the loop keeps reading while the workers catch up


class _Lane:
    """Calls that run one after another in a pool, in the order submitted. None blocks a thread
    waiting for its turn: each is handed to the pool when the previous one completes, and once
    one fails the rest fail with its error without running. Submitted from one thread only."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool
        self.tail: Future[None] | None = None

    def submit(self, fn: Callable[..., None], *args: Any) -> Future[None]:
        done: Future[None] = Future()

        def start(prev: Future[None] | None) -> None:
            if prev is not None and (prev.cancelled() or prev.exception() is not None):
                done.set_exception(
                    prev.exception() if not prev.cancelled() else OSError("cancelled")
                )
                return
            try:
                inner = self.pool.submit(fn, *args)
            except RuntimeError as exc:  # the pool is shut down
                done.set_exception(exc)
                return
            inner.add_done_callback(lambda f: _settle(f, done))

        prev, self.tail = self.tail, done
        if prev is None:
            start(None)
        else:
            prev.add_done_callback(start)
        return done


def _settle(source: Future[None], target: Future[None]) -> None:
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(None)


class _Sink:
    """A temp file written in order by one lane while each hashlib digest is fed, in order, by a
    lane of its own (hashlib releases the GIL on large buffers, so they spread over the cores).
    The caller's extra hashes (the S3 checksum, a CRC at 13 GB/s) are fed by the writing lane
    after each write: a hop per batch fewer, and less handing the GIL between threads (a 128 MiB
    multipart upload ran at 385 to 413 MB/s, against 326 to 384 with a lane of its own). The
    file is opened by the first write, so a one-batch body costs one hop in each lane.

    Every WRITEBACK bytes it asks the kernel to start writing the new range to disk, and every
    SYNC_EVERY bytes it runs an fdatasync in another thread while writing goes on: otherwise the
    page cache (and, on a virtual disk, the host's cache) keeps a whole upload unsynced and the
    final fsync flushes it all while the client waits (here 0.5 to 0.9 s per GiB, whatever the
    pace of the writes). The fsync in `finish` is what makes the blob durable; the earlier ones
    only shorten it."""

    def __init__(
        self,
        path: Path,
        hasher: _Hasher,
        io: ThreadPoolExecutor,
        pool: ThreadPoolExecutor,
        place: Callable[[Path], None],
    ) -> None:
        self.path = path
        self.place = place
        self.fd = -1
        self.hasher = hasher
        self.io = io
        self.writes = _Lane(io)
        self.syncing: Future[None] | None = None  # a background fdatasync, if one runs
        self.synced = 0
        # hashlib digests get a lane each; the caller's extra hashes (a CRC) are fed by the
        # writing thread after each write: one thread hop fewer per batch
        self.lanes = [(_Lane(pool), h) for h in hasher.named.values()]
        self.inline = hasher.extra
        self.offset = 0
        self.flushed = 0

    def submit(self, batch: list[bytes]) -> list[Future[None]]:
        """Queue a batch (from the event loop): the futures of its steps."""
        hashed = [lane.submit(_feed_all, [h], batch) for lane, h in self.lanes]
        return [self.writes.submit(self._write, batch), *hashed]

    def finish(self, batch: list[bytes]) -> Future[None]:
        """Queue the last batch, then fsync, close and `place` the file, once every hash is fed."""
        hashed = [lane.submit(_feed_all, [h], batch) for lane, h in self.lanes]
        return self.writes.submit(self._finish, batch, hashed)

    def _write(self, batch: list[bytes]) -> None:
        if self.fd < 0:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            self.fd = os.open(self.path, flags, 0o644)
        for data in batch:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
            self.offset += len(data)
        _feed_all(self.inline, batch)
        if _sync_file_range is not None and self.offset - self.flushed >= WRITEBACK:
            _sync_file_range(
                self.fd, self.flushed, self.offset - self.flushed, SYNC_FILE_RANGE_WRITE
            )
            self.flushed = self.offset
        if self.offset - self.synced >= SYNC_EVERY and (
            self.syncing is None or self.syncing.done()
        ):
            if self.syncing is not None:
                self.syncing.result()  # a failed background sync fails the write
            self.syncing, self.synced = self.io.submit(os.fdatasync, self.fd), self.offset

    def _finish(self, batch: list[bytes], hashed: list[Future[None]]) -> None:
        self._write(batch)
        for step in hashed:
            step.result()  # a hash pool thread never waits on anything, so this ends
        if self.syncing is not None:
            self.syncing.result()
        os.fsync(self.fd)
        self.close()
        self.place(self.path)

    def tails(self) -> list[Future[None]]:
        lanes = [self.writes, *(lane for lane, _ in self.lanes)]
        tails = [lane.tail for lane in lanes if lane.tail is not None]
        return tails + ([self.syncing] if self.syncing is not None else [])

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def _joined(batch: list[bytes]) -> list[bytes]:
    """One buffer for a batch of chunks: each worker then takes the GIL once per batch rather
    than once per chunk (a hashing thread that waits for the GIL after every 64 KiB chunk
    spends more time waiting than hashing). Costs one memory copy."""
    return [b"".join(batch)] if len(batch) > 1 else batch


def _feed_all(hashes: Sequence[Hash], batch: list[bytes]) -> None:
    for h in hashes:
        for data in batch:
            h.update(data)


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
        path = self.tmp / f"{uuid.uuid4().hex}.part"
        final = path if key is None else self.path(key)
        place = (lambda p: None) if key is None else (lambda p: self._rename(p, final))
        sink = _Sink(path, _Hasher(algorithms, extra), self.io, self._pool, place)
        size = 0
        # A pipeline: while workers write and hash earlier batches (up to DEPTH of them), the
        # loop keeps reading the next from the client, so network, writing and the hashes use
        # both cores.
        inflight: deque[list[Future[None]]] = deque()
        try:
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
        digests = sink.hasher.hexdigests()
        return Written(
            final,
            size,
            digests.get("md5", ""),
            digests.get("sha256", ""),
            digests.get("sha512", ""),
            digests,
        )

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
        run = asyncio.get_running_loop().run_in_executor
        handle: BinaryIO | None = None
        try:
            handle, data = await run(self.io, self._open_read, key, start, end)
            remaining = None if end is None else end - start - len(data)
            while data:
                yield data
                if remaining is not None and remaining <= 0:
                    break
                want = CHUNK if remaining is None else min(CHUNK, remaining)
                data = await run(self.io, handle.read, want)
                if remaining is not None:
                    remaining -= len(data)
        finally:
            if handle is not None:
                handle.close()

    async def read_small(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of a blob at once, in one thread hop (for small objects)."""
        handle, data = await asyncio.get_running_loop().run_in_executor(
            self.io, self._open_read, key, start, end
        )
        handle.close()
        return data

    def _open_read(self, key: str, start: int, end: int | None) -> tuple[BinaryIO, bytes]:
        handle = open(self.path(key), "rb")  # the caller closes it
        try:
            handle.seek(start)
            return handle, handle.read(CHUNK if end is None else min(CHUNK, end - start))
        except BaseException:
            handle.close()
            raise

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

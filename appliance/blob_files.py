"""One blob file, written and read: the pipeline that writes a stream to a temp file while its
digests are computed in other threads (see `Sink`), and the reader that streams it back (`Reader`).
Large blobs go past the page cache with O_DIRECT both ways. `appliance.blobs` is the API."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import mmap
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

CHUNK = 1 << 20  # write and hash in 1 MiB steps, off the event loop


Batch = Sequence[bytes | memoryview]  # the pieces of body that a Sink writes and hashes at once


class Hash(Protocol):
    """Anything hashlib-like that a caller wants fed with the bytes as they stream (CRCs, SHA-1...)."""

    def update(self, data: bytes | memoryview, /) -> Any: ...


class Hasher:
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


# sync_file_range(2) is not in the os module; without it the final fsync does all the work.
_libc = ctypes.CDLL(None, use_errno=True)
_sync_file_range = getattr(_libc, "sync_file_range", None)
if _sync_file_range is not None:
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
SYNC_FILE_RANGE_WRITE = 2
WRITEBACK = 1 << 20  # start writing to disk every 1 MiB
SYNC_EVERY = 4 << 20  # fdatasync in the background after each 4 MiB (one at a time per blob)
DEPTH = 4  # batches in flight per blob: the loop keeps reading while the workers catch up
READAHEAD = 4 * CHUNK  # bytes a direct read asks the disk for at once
ALIGN = 4096  # O_DIRECT offsets, lengths and buffers: a multiple of every disk's logical block


class Buffers:
    """Page-aligned buffers for direct I/O, kept for the next blob rather than unmapped. A new
    mapping is zero pages that the kernel faults in one at a time on first touch, and in a VM
    whose freed memory goes back to the host every one of those faults goes to the host too: a
    128 MiB upload in 8 MiB parts faulted in 8,000 pages for its staging buffers alone. Only
    buffers of the `sizes` the pipeline uses are kept, never more than `keep` of each (nor more
    than were in use at once); `release` drops them all, for an idle server to give the memory
    back."""

    def __init__(self, sizes: Sequence[int], keep: int = 16) -> None:
        self.sizes = frozenset(sizes)
        self.keep = keep
        self.free: dict[int, list[mmap.mmap]] = {}
        self.lock = threading.Lock()

    def take(self, size: int) -> mmap.mmap:
        with self.lock:
            kept = self.free.get(size)
            if kept:
                return kept.pop()
        return mmap.mmap(-1, size)

    def give(self, buffer: mmap.mmap) -> None:
        """Keep `buffer` for another take; the caller no longer uses it, nor does any thread. One
        not kept is unmapped with its last reference (not closed: a view an exception's
        traceback keeps would make close() fail)."""
        if len(buffer) not in self.sizes:
            return
        with self.lock:
            kept = self.free.setdefault(len(buffer), [])
            if len(kept) < self.keep:
                kept.append(buffer)

    def release(self) -> None:
        with self.lock:
            self.free.clear()


STAGING = 2 * CHUNK  # a direct write's buffer: the bytes held back plus a batch
READ_STAGING = READAHEAD + ALIGN  # a direct read's: READAHEAD from an aligned offset


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


class Sink:
    """A temp file written in order by one lane. The caller's extra hashes (the S3 checksum, a
    CRC at 13 GB/s) are fed by the writing lane after each write. Each hashlib digest is fed,
    in order, by a lane of its own when the blob is `spread` (hashlib releases the GIL on large
    buffers, so one upload's digests spread over the cores: a 128 MiB single PUT ran at 351 MB/s
    against 273 with every digest in the writing lane); otherwise, when other blobs are being
    written at the same time and keep the cores busy, by the writing lane too: no thread hops
    between digests, and each batch is hashed while it is still in the CPU's cache (a 128 MiB
    upload in 8 parts at once ran 5 to 8 % faster). The file is opened by the first write, so a
    one-batch body costs one hop in each lane.

    Written buffered, every WRITEBACK bytes it asks the kernel to start writing the new range to
    disk; and every SYNC_EVERY bytes it runs an fdatasync in another thread while writing goes
    on: otherwise the page cache (and, on a virtual disk, the host's cache) keeps a whole upload
    unsynced and the final fsync flushes it all while the client waits (here 0.5 to 0.9 s per GiB,
    whatever the pace of the writes). The fsync in `finish` is what makes the blob durable; the
    earlier ones only shorten it.

    A blob of more than one batch is written with O_DIRECT, as MinIO writes large objects: from
    an aligned staging buffer straight to the disk, past the page cache. Buffered, each new page
    of cache costs a page allocation (and, in a VM whose freed memory goes back to the host, a
    fault into the host): writing 128 MiB of new data cost 0.25 core-s per 100 MB here against
    0.01 direct, the copy into the staging buffer included, and a large upload no longer evicts
    the cache that small objects and the database live in. The last unaligned bytes are written
    buffered; a filesystem without O_DIRECT gets buffered writes throughout."""

    def __init__(
        self,
        path: Path,
        hasher: Hasher,
        io: ThreadPoolExecutor,
        pool: ThreadPoolExecutor,
        place: Callable[[Path], None],
        buffers: Buffers,
        spread: bool = True,
    ) -> None:
        self.path = path
        self.buffers = buffers
        self.place = place
        self.fd = -1
        self.hasher = hasher
        self.io = io
        self.writes = _Lane(io)
        self.syncing: Future[None] | None = None  # a background fdatasync, if one runs
        self.synced = 0
        digests = list(hasher.named.values())
        self.lanes = [(_Lane(pool), h) for h in digests] if spread else []
        self.inline = hasher.extra if spread else [*digests, *hasher.extra]  # fed by the writer
        self.offset = 0
        self.flushed = 0
        self.direct = False  # the file is open with O_DIRECT
        self.staging: mmap.mmap | None = None  # the aligned buffer direct writes go from
        self.held = b""  # bytes past the last aligned offset, for the next direct write

    def submit(self, batch: Batch, aligned: bool = False) -> list[Future[None]]:
        """Queue a batch (all from one thread): the futures of its steps. `aligned`: the batch is
        one buffer at a page-aligned address, which a direct write can go from as it is."""
        hashed = [lane.submit(_feed_all, [h], batch) for lane, h in self.lanes]
        return [self.writes.submit(self._write, batch, False, aligned), *hashed]

    def finish(self, batch: Batch, aligned: bool = False) -> Future[None]:
        """Queue the last batch, then fsync, close and `place` the file, once every hash is fed."""
        hashed = [lane.submit(_feed_all, [h], batch) for lane, h in self.lanes]
        return self.writes.submit(self._finish, batch, hashed, aligned)

    def run(self, batch: Batch, last: bool) -> None:
        """Write and hash one `aligned` batch in the calling thread, for a blob not `spread` whose
        batches all come from that thread (no lane runs); after the `last`, `finish` it there."""
        assert not self.lanes and self.writes.tail is None
        if last:
            self._finish(batch, [], True)
        else:
            self._write(batch, False, True)

    def _write(self, batch: Batch, last: bool = False, aligned: bool = False) -> None:
        if self.fd < 0:
            self._open(direct=not last)  # a blob of more than one batch
        if self.direct:
            self._write_direct(batch, last, aligned)
        else:
            for data in batch:
                self._write_all(data)
        self.offset += sum(len(data) for data in batch)
        _feed_all(self.inline, batch)
        if (
            not self.direct
            and _sync_file_range is not None
            and self.offset - self.flushed >= WRITEBACK
        ):
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

    def _open(self, direct: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        self.fd = os.open(self.path, flags, 0o644)
        if direct and _set_direct(self.fd, True):
            self.direct = True

    def _write_direct(self, batch: Batch, last: bool, aligned: bool) -> None:
        """Write the aligned part of held + batch with O_DIRECT and hold the rest; when `last`
        (or once the disk refused a direct write), write the rest buffered. Bytes go through
        the aligned staging buffer unless the batch is one `aligned` buffer and none are held."""
        size = len(self.held) + sum(len(data) for data in batch)
        if aligned and not self.held and len(batch) == 1:
            source = memoryview(batch[0])
        else:
            if self.staging is None or size > len(self.staging):
                self._give_staging()
                self.staging = self.buffers.take(max(STAGING, -(-size // CHUNK) * CHUNK))
            source = memoryview(self.staging)
            at = 0
            for data in (self.held, *batch):
                source[at : at + len(data)] = data
                at += len(data)
        whole = size - size % ALIGN
        self._write_all(source[:whole])
        self.held = bytes(source[whole:size])
        if last or not self.direct:
            self._buffered()
            self._write_all(self.held)
            self.held = b""
            self._give_staging()

    def _buffered(self) -> None:
        """Stop writing with O_DIRECT (a no-op once stopped)."""
        if self.direct:
            _set_direct(self.fd, False)
            self.direct = False

    def _write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except OSError as exc:
                # a disk that wants more alignment than ALIGN, or a short direct write that left
                # the rest unaligned: go on buffered from the same place
                if exc.errno != errno.EINVAL or not self.direct:
                    raise
                self._buffered()

    def _finish(self, batch: Batch, hashed: list[Future[None]], aligned: bool) -> None:
        self._write(batch, True, aligned)
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

    def _give_staging(self) -> None:
        if self.staging is not None:
            staging, self.staging = self.staging, None
            self.buffers.give(staging)

    def close(self) -> None:
        """Close the file; called once no lane has a step left to run."""
        self._give_staging()
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


class Reader:
    """Reads a blob from `position` up to `end`. A blob of CHUNK bytes or more, written past the
    page cache (see Sink), is read past it too, with O_DIRECT into an aligned buffer, READAHEAD
    bytes at a time: reading 128 MiB not in the cache cost 0.15 core-s per 100 MB buffered here (a
    new page of cache for every 4 KiB) against 0.02 direct, and ran at 570 MB/s against 1,600.
    Smaller blobs are read buffered, and so is every blob where the filesystem or disk refuses
    O_DIRECT."""

    def __init__(self, path: Path, position: int, end: int | None, buffers: Buffers) -> None:
        self.buffers = buffers
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.position = position
        self.end = end
        self.staging: mmap.mmap | None = None
        self.base = self.filled = 0  # the file's bytes [base, base + filled) are in staging
        try:
            if os.fstat(self.fd).st_size >= CHUNK and _set_direct(self.fd, True):
                self.staging = buffers.take(READ_STAGING)  # page-aligned
        except BaseException:
            os.close(self.fd)
            raise

    @property
    def at_end(self) -> bool:
        """The range asked for is all read (a reader with no `end` learns it from a b"")."""
        return self.end is not None and self.position >= self.end

    def read(self, want: int) -> bytes:
        """Up to `want` (at most CHUNK) bytes from the current position; b"" at the end."""
        if self.end is not None:
            want = min(want, self.end - self.position)
        if want <= 0:
            return b""
        if self.staging is not None and not (
            self.base <= self.position and self.position + want <= self.base + self.filled
        ):
            self._fill(want)
        if self.staging is not None:
            skip = self.position - self.base
            data = bytes(memoryview(self.staging)[skip : max(skip, min(self.filled, skip + want))])
        else:
            data = os.pread(self.fd, want, self.position)
        self.position += len(data)
        return data

    def _fill(self, want: int) -> None:
        """Read READAHEAD bytes (fewer if `end` is near) from the aligned offset at or before
        the current position into staging."""
        assert self.staging is not None
        base = self.position - self.position % ALIGN
        ahead = READAHEAD - ALIGN
        if self.end is not None:
            ahead = min(ahead, self.end - self.position)
        span = -(-(self.position - base + max(want, ahead)) // ALIGN) * ALIGN
        try:
            self.filled = os.preadv(self.fd, [memoryview(self.staging)[:span]], base)
            self.base = base
        except OSError as exc:  # a disk that wants more alignment than ALIGN: go buffered
            if exc.errno != errno.EINVAL:
                raise
            _set_direct(self.fd, False)
            self.buffers.give(self.staging)
            self.staging = None

    def close(self) -> None:
        """Close the file; never while a `read` runs in another thread."""
        if self.staging is not None:
            staging, self.staging = self.staging, None
            self.buffers.give(staging)
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def _set_direct(fd: int, on: bool) -> bool:
    """Turn O_DIRECT on or off for `fd`; False where the filesystem has no O_DIRECT (EINVAL)."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | os.O_DIRECT) if on else (flags & ~os.O_DIRECT))
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    return True


def _feed_all(hashes: Sequence[Hash], batch: Batch) -> None:
    for h in hashes:
        for data in batch:
            h.update(data)

"""The blob layer: immutable byte files under <data-dir>/blobs, shared by images and the object store.

A blob is written to a temp file in blobs/tmp, hashed while it streams, fsync'd, then renamed into
place (and the directory fsync'd), so a crash leaves either no blob or a whole one. Callers commit
their metadata row only after `commit`, and delete blobs whose rows they drop.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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
WRITEBACK = 8 << 20  # start writing to disk every 8 MiB


class _Sink:
    """A temp file being written and hashed by one worker thread at a time.

    Every WRITEBACK bytes it asks the kernel to start writing the new range to disk, without
    waiting: otherwise the page cache keeps a whole upload dirty (vm.dirty_background_ratio lets
    gigabytes wait) and the final fsync writes it all while the client waits. The fsync in
    `finish` is what makes the blob durable; starting early only shortens it."""

    def __init__(self, fd: int, hasher: _Hasher, pool: ThreadPoolExecutor) -> None:
        self.fd = fd
        self.hasher = hasher
        self.pool = pool
        self.offset = 0
        self.flushed = 0

    def write(self, batch: list[bytes]) -> None:
        # hashlib releases the GIL on large buffers: each digest runs on its own core at once.
        first, *rest = self.hasher.all or [None]
        others = [self.pool.submit(_feed, h, batch) for h in rest]
        try:
            for data in batch:
                view = memoryview(data)
                while view:
                    view = view[os.write(self.fd, view) :]
                self.offset += len(data)
            if first is not None:
                _feed(first, batch)
        finally:
            for future in others:
                future.result()
        if _sync_file_range is not None and self.offset - self.flushed >= WRITEBACK:
            _sync_file_range(
                self.fd, self.flushed, self.offset - self.flushed, SYNC_FILE_RANGE_WRITE
            )
            self.flushed = self.offset

    def finish(self) -> None:
        os.fsync(self.fd)
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def _feed(h: Hash, batch: list[bytes]) -> None:
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
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="nube-hash")
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

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
    ) -> Written:
        """Stream `chunks` to a new temp file; BlobTooLarge past `limit` bytes (the file is removed).

        The bytes are hashed with each hashlib `algorithms` (hex digests in the result) and fed to
        every `extra` hash object the caller keeps."""
        path = self.tmp / f"{uuid.uuid4().hex}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        sink = _Sink(
            await asyncio.to_thread(os.open, path, flags, 0o644),
            _Hasher(algorithms, extra),
            self._pool,
        )
        size = 0
        # Double buffering: while a worker thread writes and hashes one batch of chunks, the loop
        # keeps reading the next from the client, so network and hashing use both cores. Chunks
        # are passed on as they came (no joining): each byte is copied once more, into the file.
        pending: asyncio.Future[None] | None = None
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
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(asyncio.to_thread(sink.write, batch))
                    batch, batched = [], 0
            if pending is not None:
                await pending
                pending = None
            if batch:
                await asyncio.to_thread(sink.write, batch)
            await asyncio.to_thread(sink.finish)
        except BaseException:
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
            sink.close()
            path.unlink(missing_ok=True)
            raise
        digests = sink.hasher.hexdigests()
        return Written(
            path,
            size,
            digests.get("md5", ""),
            digests.get("sha256", ""),
            digests.get("sha512", ""),
            digests,
        )

    def commit(self, written: Written, key: str) -> Path:
        """Move a written temp file into place under `key` (atomic rename, directory fsync'd)."""
        target = self.path(key)
        target.parent.mkdir(exist_ok=True)
        os.replace(written.path, target)
        _fsync_dir(target.parent)
        return target

    def discard(self, written: Written) -> None:
        written.path.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of a blob in CHUNK steps."""
        handle = await asyncio.to_thread(open, self.path(key), "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                want = CHUNK if remaining is None else min(CHUNK, remaining)
                data = await asyncio.to_thread(handle.read, want)
                if not data:
                    break
                if remaining is not None:
                    remaining -= len(data)
                yield data
        finally:
            handle.close()

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

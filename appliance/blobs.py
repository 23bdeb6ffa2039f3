"""The blob layer: immutable byte files under <data-dir>/blobs, shared by images and the object store.

A blob is written to a temp file in blobs/tmp, hashed while it streams, fsync'd, then renamed into
place (and the directory fsync'd), so a crash leaves either no blob or a whole one. Callers commit
their metadata row only after `commit`, and delete blobs whose rows they drop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20  # write and hash in 1 MiB steps, off the event loop


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


class _Hasher:
    def __init__(self) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.sha512 = hashlib.sha512()

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        self.sha256.update(data)
        self.sha512.update(data)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Blobs:
    def __init__(self, root: Path) -> None:
        self.root = root
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

    async def write(self, chunks: AsyncIterable[bytes], limit: int | None = None) -> Written:
        """Stream `chunks` to a new temp file; BlobTooLarge past `limit` bytes (the file is removed)."""
        path = self.tmp / f"{uuid.uuid4().hex}.part"
        hasher = _Hasher()
        size = 0
        handle = await asyncio.to_thread(open, path, "wb")
        try:
            buffer = bytearray()
            async for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise BlobTooLarge(f"more than {limit} bytes")
                buffer += chunk
                if len(buffer) >= CHUNK:
                    data, buffer = bytes(buffer), bytearray()
                    await asyncio.to_thread(self._write_hash, handle, hasher, data)
            if buffer:
                await asyncio.to_thread(self._write_hash, handle, hasher, bytes(buffer))
            await asyncio.to_thread(self._finish, handle)
        except BaseException:
            handle.close()
            path.unlink(missing_ok=True)
            raise
        return Written(
            path, size, hasher.md5.hexdigest(), hasher.sha256.hexdigest(), hasher.sha512.hexdigest()
        )

    @staticmethod
    def _write_hash(handle: object, hasher: _Hasher, data: bytes) -> None:
        handle.write(data)  # type: ignore[attr-defined]
        hasher.update(data)

    @staticmethod
    def _finish(handle: object) -> None:
        handle.flush()  # type: ignore[attr-defined]
        os.fsync(handle.fileno())  # type: ignore[attr-defined]
        handle.close()  # type: ignore[attr-defined]

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

    def sweep_tmp(self) -> int:
        """Remove temp files a crash left behind; returns how many."""
        removed = 0
        for leftover in self.tmp.glob("*.part"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

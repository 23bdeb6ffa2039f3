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
        hasher = _Hasher(algorithms, extra)
        size = 0
        handle = await asyncio.to_thread(open, path, "wb")
        # Double buffering: while a worker thread writes and hashes one chunk, the loop keeps
        # reading the next from the client, so network and hashing use both cores.
        pending: asyncio.Future[None] | None = None
        try:
            buffer = bytearray()
            async for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise BlobTooLarge(f"more than {limit} bytes")
                buffer += chunk
                if len(buffer) >= CHUNK:
                    data, buffer = bytes(buffer), bytearray()
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(
                        asyncio.to_thread(self._write_hash, handle, hasher, data)
                    )
            if pending is not None:
                await pending
                pending = None
            if buffer:
                await asyncio.to_thread(self._write_hash, handle, hasher, bytes(buffer))
            await asyncio.to_thread(self._finish, handle)
        except BaseException:
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
            handle.close()
            path.unlink(missing_ok=True)
            raise
        digests = hasher.hexdigests()
        return Written(
            path,
            size,
            digests.get("md5", ""),
            digests.get("sha256", ""),
            digests.get("sha512", ""),
            digests,
        )

    def _write_hash(self, handle: object, hasher: _Hasher, data: bytes) -> None:
        # hashlib releases the GIL on large buffers: each digest runs on its own core at once.
        others = [self._pool.submit(h.update, data) for h in hasher.all[1:]]
        handle.write(data)  # type: ignore[attr-defined]
        if hasher.all:
            hasher.all[0].update(data)
        for future in others:
            future.result()

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

"""Small objects kept in the database, written in the same transaction as their row.

An object body of at most INLINE_MAX bytes goes to table `inline_data` and its version names it by
the segment key "inline:<id>". It becomes durable with the row itself (the group commit's one WAL
fsync), so a small PUT needs no temp file, no rename and no directory fsync, and a crash leaves
the old object or the new one exactly as it does for the row (MinIO keeps small objects inside
its metadata for the same reason). Larger bodies stream to blob files as before. Multipart parts
are always files: completion names them as segments without copying a byte.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable

from sqlite_utils import Database

from appliance.blobs import Direct

INLINE_MAX = 64 * 1024
PREFIX = "inline:"


def is_inline(key: str) -> bool:
    return key.startswith(PREFIX)


async def gather(body: AsyncIterable[bytes]) -> tuple[bytes | None, AsyncIterable[bytes]]:
    """Read `body` up to INLINE_MAX bytes: (the whole body, if it fits) and else a stream that
    yields everything (what was read first, then the rest). A Direct body larger than that
    is not read here, so that the blob write can still take it."""
    if isinstance(body, Direct) and body.size > INLINE_MAX:
        return None, body
    stream = aiter(body)
    head: list[bytes] = []
    size = 0
    async for chunk in stream:
        head.append(chunk)
        size += len(chunk)
        if size > INLINE_MAX:
            return None, _chain(head, stream)
    return b"".join(head), _chain([], stream)


async def _chain(head: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in head:
        yield chunk
    async for chunk in rest:
        yield chunk


def store(db: Database, data: bytes) -> str:
    """Keep `data` (inside the caller's transaction); its segment key."""
    row = db.execute("INSERT INTO inline_data (data) VALUES (?) RETURNING id", [data]).fetchone()
    return f"{PREFIX}{row[0]}"


def load(db: Database, key: str, start: int = 0, end: int | None = None) -> bytes:
    """Bytes [start, end) of an inline segment (to its end if `end` is None)."""
    if end is None:
        row = db.execute("SELECT data FROM inline_data WHERE id = ?", [_id(key)]).fetchone()
    else:
        row = db.execute(
            "SELECT substr(data, ?, ?) FROM inline_data WHERE id = ?",
            [start + 1, end - start, _id(key)],
        ).fetchone()
    if row is None:
        raise FileNotFoundError(key)
    return bytes(row[0])[start:] if end is None else bytes(row[0])


def drop(db: Database, keys: Iterable[str]) -> list[str]:
    """Delete the inline segments among `keys` (inside the caller's transaction); the others."""
    files = []
    for key in keys:
        if is_inline(key):
            db.execute("DELETE FROM inline_data WHERE id = ?", [_id(key)])
        else:
            files.append(key)
    return files


def size(db: Database, key: str) -> int | None:
    """Bytes stored under an inline segment key; None if there is no such row (or no such key)."""
    try:
        ident = _id(key)
    except ValueError:
        return None
    row = db.execute("SELECT length(data) FROM inline_data WHERE id = ?", [ident]).fetchone()
    return None if row is None else int(row[0])


def keys(db: Database) -> set[str]:
    return {f"{PREFIX}{i}" for (i,) in db.execute("SELECT id FROM inline_data")}


def _id(key: str) -> int:
    return int(key.removeprefix(PREFIX))

"""Buckets and objects: policy (who may do what), state in SQLite, bytes in the blob layer.

Every write streams to an fsync'd temp blob, renames it into place, and only then commits the row
that points at it; blobs a row no longer names are deleted after the commit. A crash therefore
leaves the old object or the new one, and at worst an orphan blob that `sweep` removes at start-up.
Both S3 and Swift call this module; neither sees the other's wire format.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from appliance.blobs import Blobs, BlobTooLarge, Written, digest
from appliance.context import Context
from appliance.objects import checksums, inline
from appliance.objects.commits import GroupCommit
from appliance.objects.errors import S3Error

log = logging.getLogger("nube.objects")

BLOB_SUFFIX = ".obj"
MIN_PART = 5 * 1024 * 1024
MAX_PARTS = 10_000
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$")

# Keystone registered limits for the object store (service type object-store); sizes in MiB.
DEFAULT_LIMITS = {"object_count_total": 1_000_000, "object_size_total": 1024 * 1024}

LimitFn = Callable[[str, str], int]
Caller = Context | None  # None: an anonymous request


def _unlimited(project_id: str, resource: str) -> int:
    return -1


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    project_id: str
    created_at: str
    versioning: str
    acl: str
    policy: str | None
    cors: str | None
    tagging: str | None
    meta: dict[str, str]
    objects: int
    bytes: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Bucket:
        return cls(**{**row, "meta": json.loads(row["meta"])})


@dataclass(frozen=True, slots=True)
class Version:
    id: int
    bucket: str
    key: str
    version_id: str
    is_latest: bool
    delete_marker: bool
    size: int
    etag: str
    modified: float
    content_type: str
    headers: dict[str, str]
    meta: dict[str, str]
    checksum_algorithm: str
    checksum: str
    checksum_type: str
    tagging: dict[str, str]
    acl: str
    parts: list[int]
    segments: list[tuple[str, int]]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Version:
        return cls(
            **{
                **row,
                "is_latest": bool(row["is_latest"]),
                "delete_marker": bool(row["delete_marker"]),
                "headers": json.loads(row["headers"]),
                "meta": json.loads(row["meta"]),
                "tagging": json.loads(row["tagging"]),
                "parts": json.loads(row["parts"]),
                "segments": [tuple(s) for s in json.loads(row["segments"])],
            }
        )


@dataclass(slots=True)
class Attributes:
    """What a writer sets on an object besides its bytes."""

    content_type: str = "binary/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)  # content-encoding, cache-control...
    meta: dict[str, str] = field(default_factory=dict)  # user metadata, lowercase names
    tagging: dict[str, str] = field(default_factory=dict)
    acl: str = ""


@dataclass(slots=True)
class Checks:
    """What the body must match, known before it streams (headers) or after (a trailer)."""

    md5_b64: str | None = None
    sha256_hex: str | None = None
    checksum_algorithm: str = ""  # compute this one and store it
    checksum_b64: str | None = None
    late: Callable[[], dict[str, str]] | None = None  # trailer headers, read after the body
    length: int | None = None  # the decoded length the client declared


@dataclass(slots=True)
class Conditions:
    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: float | None = None
    if_unmodified_since: float | None = None

    def __bool__(self) -> bool:  # any condition given at all
        return any(
            v is not None
            for v in (
                self.if_match,
                self.if_none_match,
                self.if_modified_since,
                self.if_unmodified_since,
            )
        )


def new_version_id() -> str:
    return uuid.uuid4().hex


def strip_etag(value: str) -> str:
    return value.strip().removeprefix("W/").strip('"')


def check_conditions(v: Version | None, c: Conditions, reading: bool) -> None:
    """RFC 7232 evaluation as S3 does it: If-Match before If-Unmodified-Since, If-None-Match
    before If-Modified-Since; a failed If-None-Match on a read is 304, on a write 412."""
    etag = v.etag if v else None
    if c.if_match is not None:
        tags = {strip_etag(t) for t in c.if_match.split(",")}
        if etag is None:
            raise S3Error("NoSuchKey" if not reading else "PreconditionFailed")
        if "*" not in tags and etag not in tags:
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            )
    elif c.if_unmodified_since is not None and v and v.modified > c.if_unmodified_since + 1:
        raise S3Error(
            "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"
        )
    if c.if_none_match is not None:
        tags = {strip_etag(t) for t in c.if_none_match.split(",")}
        if etag is not None and ("*" in tags or etag in tags):
            if reading:
                raise S3Error("NotModified")
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            )
    elif c.if_modified_since is not None and reading and v and v.modified < c.if_modified_since + 1:
        raise S3Error("NotModified")


def _common(key: str, prefix: str, delimiter: str) -> str:
    """The common prefix `key` rolls up into under `delimiter`, or "" if it is listed itself."""
    cut = key.find(delimiter, len(prefix)) if delimiter else -1
    return key[: cut + len(delimiter)] if cut >= 0 else ""


def _upper(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix`."""
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class ObjectStore:
    def __init__(self, db: Database, blobs: Blobs, limit: LimitFn = _unlimited) -> None:
        self.db = db
        self.blobs = blobs
        self.limit = limit
        self.commits = GroupCommit(db, blobs)

    # -- rows ------------------------------------------------------------------------------------

    def _all(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, list(params))
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _one(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> dict[str, Any] | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    # -- access ----------------------------------------------------------------------------------

    def bucket(self, name: str) -> Bucket:
        row = self._one("SELECT * FROM buckets WHERE name = ?", [name])
        if row is None:
            raise S3Error("NoSuchBucket", "The specified bucket does not exist", BucketName=name)
        return Bucket.from_row(row)

    @staticmethod
    def owns(caller: Caller, bucket: Bucket) -> bool:
        return caller is not None and caller.project_id == bucket.project_id

    def authorize(self, caller: Caller, name: str, action: str, key: str = "") -> Bucket:
        """The bucket, if `caller` may do `action` (an S3 action name, e.g. s3:GetObject) on it.

        The owning project's readers read and members write; anyone else (another project or
        anonymous) only what the bucket's canned ACL or policy grants to everyone."""
        bucket = self.bucket(name)
        if self.owns(caller, bucket):
            assert caller is not None
            reading = action.startswith(("s3:Get", "s3:List"))
            if caller.can_write or (reading and caller.can_read):
                return bucket
            raise S3Error("AccessDenied", "Access Denied")
        if _public_allows(bucket, action, key):
            return bucket
        raise S3Error("AccessDenied", "Access Denied")

    # -- buckets ---------------------------------------------------------------------------------

    def list_buckets(self, ctx: Context) -> list[Bucket]:
        rows = self._all(
            "SELECT * FROM buckets WHERE project_id = ? ORDER BY name", [ctx.project_id]
        )
        return [Bucket.from_row(r) for r in rows]

    def create_bucket(
        self, ctx: Context, name: str, acl: str = "private", swift: bool = False
    ) -> bool:
        """Create a bucket; False if the caller's project already has it (Swift answers 202)."""
        if ctx.project_id is None or not ctx.can_write:
            raise S3Error("AccessDenied", "Creating buckets requires the member role in a project.")
        if not swift and (not _BUCKET_NAME.match(name) or ".." in name):
            raise S3Error(
                "InvalidBucketName", "The specified bucket is not valid.", BucketName=name
            )
        if swift and (not name or "/" in name or len(name) > 256):
            raise S3Error("InvalidBucketName", "The specified container name is not valid.")
        existing = self._one("SELECT project_id FROM buckets WHERE name = ?", [name])
        if existing is not None:
            if existing["project_id"] == ctx.project_id:
                if swift:
                    return False
                raise S3Error(
                    "BucketAlreadyOwnedByYou",
                    "Your previous request to create the named bucket succeeded and you already own it.",
                    BucketName=name,
                )
            raise S3Error(
                "BucketAlreadyExists",
                "The requested bucket name is not available.",
                BucketName=name,
            )
        if acl not in CANNED_ACLS:
            raise S3Error("InvalidArgument", f"Unsupported canned ACL {acl}.")
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO buckets (name, project_id, created_at, acl) VALUES (?,?,?,?)",
                [name, ctx.project_id, _iso(time.time()), acl],
            )
        return True

    def delete_bucket(self, ctx: Context, name: str) -> None:
        bucket = self.authorize(ctx, name, "s3:DeleteBucket")
        if self._one("SELECT 1 FROM versions WHERE bucket = ? LIMIT 1", [name]) or self._one(
            "SELECT 1 FROM uploads WHERE bucket = ? LIMIT 1", [name]
        ):
            raise S3Error(
                "BucketNotEmpty", "The bucket you tried to delete is not empty", BucketName=name
            )
        with self.db.atomic():
            self.db.execute("DELETE FROM buckets WHERE name = ?", [bucket.name])

    def set_bucket(self, ctx: Caller, name: str, action: str, **changes: Any) -> Bucket:
        """Change bucket settings (versioning, acl, policy, cors, tagging, meta): owner's members."""
        bucket = self.authorize(ctx, name, action)
        if not self.owns(ctx, bucket):
            raise S3Error("AccessDenied", "Access Denied")
        if "acl" in changes and changes["acl"] not in CANNED_ACLS:
            raise S3Error("InvalidArgument", f"Unsupported canned ACL {changes['acl']}.")
        if "meta" in changes:
            changes["meta"] = json.dumps(changes["meta"])
        columns = ", ".join(f"{k} = ?" for k in changes)
        with self.db.atomic():
            self.db.execute(
                f"UPDATE buckets SET {columns} WHERE name = ?", [*changes.values(), name]
            )
        return self.bucket(name)

    def usage(self, project_id: str) -> tuple[int, int, int]:
        """(buckets, objects, bytes) of a project, from the buckets' counters."""
        row = self._one(
            "SELECT count(*) AS n, coalesce(sum(objects), 0) AS o, coalesce(sum(bytes), 0) AS b "
            "FROM buckets WHERE project_id = ?",
            [project_id],
        )
        assert row is not None
        return row["n"], row["o"], row["b"]

    def room(self, project_id: str, adding: int = 1) -> int | None:
        """Bytes the project may still store (None: no limit), once QuotaExceeded is ruled out for
        `adding` more objects. One usage query for both quotas."""
        count_limit = self.limit(project_id, "object_count_total") if adding else -1
        size_limit = self.limit(project_id, "object_size_total")
        if count_limit < 0 and size_limit < 0:
            return None
        _, objects, used = self.usage(project_id)
        if 0 <= count_limit < objects + adding:
            raise S3Error(
                "QuotaExceeded",
                f"The object count quota ({count_limit}) of the project is reached.",
            )
        return None if size_limit < 0 else max(0, size_limit * 1024 * 1024 - used)

    # -- reading ---------------------------------------------------------------------------------

    def latest(self, bucket: str, key: str) -> Version | None:
        row = self._one(
            "SELECT * FROM versions WHERE bucket = ? AND key = ? AND is_latest = 1", [bucket, key]
        )
        return Version.from_row(row) if row else None

    def version(self, bucket: str, key: str, version_id: str | None) -> Version:
        """The object (or one version of it) to read: NoSuchKey / NoSuchVersion, and a delete
        marker answers 404 (latest) or 405 (asked for by id), with x-amz-delete-marker."""
        if version_id is None:
            v = self.latest(bucket, key)
            if v is None or v.delete_marker:
                err = S3Error("NoSuchKey", "The specified key does not exist.", Key=key)
                if v is not None:
                    err.headers = {"x-amz-delete-marker": "true", "x-amz-version-id": v.version_id}
                raise err
            return v
        row = self._one(
            "SELECT * FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
            [bucket, key, version_id],
        )
        if row is None:
            if not _is_version_id(version_id):
                raise S3Error("InvalidArgument", "Invalid version id specified")
            raise S3Error(
                "NoSuchVersion",
                "The specified version does not exist.",
                Key=key,
                VersionId=version_id,
            )
        v = Version.from_row(row)
        if v.delete_marker:
            err = S3Error(
                "MethodNotAllowed", "The specified method is not allowed against this resource."
            )
            err.headers = {
                "x-amz-delete-marker": "true",
                "x-amz-version-id": v.version_id,
                "allow": "DELETE",
            }
            raise err
        return v

    async def read(
        self, v: Version, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Bytes [start, end) of a version, across its segments."""
        end = v.size if end is None else end
        offset = 0
        for key, size in v.segments:
            seg_start, seg_end = offset, offset + size
            offset = seg_end
            if seg_end <= start or seg_start >= end:
                continue
            if inline.is_inline(key):
                yield inline.load(
                    self.db, key, max(start, seg_start) - seg_start, min(end, seg_end) - seg_start
                )
                continue
            async for chunk in self.blobs.read(
                key, max(start, seg_start) - seg_start, min(end, seg_end) - seg_start
            ):
                yield chunk

    async def read_all(self, v: Version, start: int, end: int) -> bytes:
        """Bytes [start, end) of a version at once: one thread hop per segment (small reads)."""
        parts, offset = [], 0
        for key, size in v.segments:
            seg_start, seg_end = offset, offset + size
            offset = seg_end
            if seg_end > start and seg_start < end:
                lo, hi = max(start, seg_start) - seg_start, min(end, seg_end) - seg_start
                if inline.is_inline(key):
                    parts.append(inline.load(self.db, key, lo, hi))
                else:
                    parts.append(await self.blobs.read_small(key, lo, hi))
        return b"".join(parts)

    def list_objects(
        self, bucket: str, prefix: str, delimiter: str, after: str, max_keys: int
    ) -> tuple[list[Version], list[str], bool, str]:
        """One page: (objects, common prefixes, truncated, last key or prefix returned), in UTF-8
        binary key order, served from the (bucket, key) index with a skip-scan over delimiters."""
        objects: list[Version] = []
        prefixes: list[str] = []
        upper = _upper(prefix)
        cursor, inclusive = max(after, prefix), not after or after < prefix
        last = ""
        if max_keys <= 0:
            return [], [], False, ""
        while len(objects) + len(prefixes) < max_keys + 1:
            want = max_keys + 1 - len(objects) - len(prefixes)
            sql = (
                "SELECT * FROM versions WHERE bucket = ? AND is_latest = 1 AND delete_marker = 0 "
                f"AND key {'>=' if inclusive else '>'} ?"
            )
            params: list[Any] = [bucket, cursor]
            if upper is not None:
                sql += " AND key < ?"
                params.append(upper)
            sql += " ORDER BY key LIMIT ?"
            params.append(want if not delimiter else min(want, 100))
            rows = self._all(sql, params)
            if not rows:
                break
            skipped = False
            for row in rows:
                key = row["key"]
                cut = key.find(delimiter, len(prefix)) if delimiter else -1
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if common != (prefixes[-1] if prefixes else None) and common != after:
                        prefixes.append(common)
                        last = common
                    cursor, inclusive = _upper(common) or common, True
                    skipped = True
                    break
                objects.append(Version.from_row(row))
                last = key
                cursor, inclusive = key, False
                if len(objects) + len(prefixes) >= max_keys + 1:
                    break
            if not skipped and len(rows) < params[-1]:
                break
        truncated = len(objects) + len(prefixes) > max_keys
        if truncated:
            # Drop whichever entry sorts last (objects and prefixes interleave in key order).
            last_obj = objects[-1].key if objects else ""
            last_pre = prefixes[-1] if prefixes else ""
            if last_obj > last_pre:
                objects.pop()
            else:
                prefixes.pop()
            last = max(objects[-1].key if objects else "", prefixes[-1] if prefixes else "")
        return objects, prefixes, truncated, last

    def list_versions(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        version_marker: str,
        max_keys: int,
    ) -> tuple[list[Version | str], bool]:
        """One page of versions (each key's newest first) and common prefixes (str), in key order,
        and whether more follow. A common prefix counts as one entry, as in ListObjects."""
        upper = _upper(prefix)
        if key_marker and delimiter and _common(key_marker, prefix, delimiter) == key_marker:
            after: tuple[str, list[Any]] = ("key >= ?", [_upper(key_marker)])  # past the prefix
        elif key_marker and version_marker:
            marker = self._one(
                "SELECT id FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
                [bucket, key_marker, version_marker],
            )
            after = (
                "(key > ? OR (key = ? AND id < ?))",
                [key_marker, key_marker, marker["id"] if marker else 0],
            )
        elif key_marker:
            after = ("key > ?", [key_marker])
        else:
            after = ("key >= ?", [prefix])
        entries: list[Version | str] = []
        while len(entries) < max_keys + 1:
            sql = f"SELECT * FROM versions WHERE bucket = ? AND key >= ? AND {after[0]}"
            params: list[Any] = [bucket, prefix, *after[1]]
            if upper is not None:
                sql += " AND key < ?"
                params.append(upper)
            want = max_keys + 1 - len(entries)
            sql += " ORDER BY key, id DESC LIMIT ?"
            params.append(min(want, 100) if delimiter else want)
            rows = self._all(sql, params)
            jumped = False
            for row in rows:
                common = _common(row["key"], prefix, delimiter)
                if common:
                    entries.append(common)
                    after = ("key >= ?", [_upper(common)])
                    jumped = True
                    break
                v = Version.from_row(row)
                entries.append(v)
                after = ("(key > ? OR (key = ? AND id < ?))", [v.key, v.key, v.id])
                if len(entries) > max_keys:
                    break
            if not jumped and len(rows) < params[-1]:
                break
        return entries[:max_keys], len(entries) > max_keys

    # -- writing ---------------------------------------------------------------------------------

    async def receive(
        self, project_id: str, body: AsyncIterable[bytes], checks: Checks, part: bool = False
    ) -> tuple[Written, str, bytes | None]:
        """Read and verify a body: (written, its checksum in base64 or "", the bytes if small).

        A body of at most inline.INLINE_MAX bytes (not a multipart part) comes back whole, for
        the caller to store with its row; `written.path` is then meaningless. A larger one is
        already a blob committed under its key, `written.path.name`; a caller whose row does
        not commit deletes it (GroupCommit.run does)."""
        algorithm = checks.checksum_algorithm
        extra = checksums.new(algorithm) if algorithm else None
        digests = ["md5"] + (["sha256"] if checks.sha256_hex else [])
        left = self.room(project_id, adding=0 if part else 1)
        if left is not None and checks.length is not None and checks.length > left:
            raise S3Error("QuotaExceeded", "The byte quota of the project is exceeded.")
        data = None
        if not part:
            data, body = await inline.gather(body)
        if data is not None:
            if left is not None and len(data) > left:
                raise S3Error("QuotaExceeded", "The byte quota of the project is exceeded.")
            found = digest(data, digests, [extra] if extra else [])
            written = Written(Path(), len(data), found["md5"], found.get("sha256", ""), "", found)
        else:
            try:
                written = await self.blobs.write(
                    body,
                    left,
                    digests,
                    [extra] if extra else [],
                    key=uuid.uuid4().hex + BLOB_SUFFIX,
                )
            except BlobTooLarge:
                raise S3Error(
                    "QuotaExceeded", "The byte quota of the project is exceeded."
                ) from None
        try:
            value = checksums.b64(extra.digest()) if extra else ""
            _verify(written, checks, value)
        except BaseException:
            if data is None:
                self.blobs.discard(written)
            raise
        return written, value, data

    def _insert(
        self, bucket: Bucket, key: str, fields: dict[str, Any]
    ) -> tuple[Version, list[str]]:
        """Make a new latest version inside the caller's transaction; the blobs it orphans."""
        versioned = bucket.versioning == "Enabled"
        version_id = new_version_id() if versioned else "null"
        dropped: list[str] = []
        objects = size = 0  # the bucket's counters move by these
        if not versioned:
            for row in self._all(
                "DELETE FROM versions WHERE bucket = ? AND key = ? AND version_id = 'null' "
                "RETURNING *",
                [bucket.name, key],
            ):
                old = Version.from_row(row)
                dropped += inline.drop(self.db, [s[0] for s in old.segments])
                if not old.delete_marker:
                    objects, size = objects - 1, size - old.size
        if bucket.versioning:  # else every version was a "null" one, just deleted
            self.db.execute(
                "UPDATE versions SET is_latest = 0 WHERE bucket = ? AND key = ? AND is_latest = 1",
                [bucket.name, key],
            )
        row = {
            "bucket": bucket.name,
            "key": key,
            "version_id": version_id,
            "is_latest": 1,
            "modified": time.time(),
            **fields,
        }
        for name in ("headers", "meta", "tagging", "parts", "segments"):
            if name in row and not isinstance(row[name], str):
                row[name] = json.dumps(row[name])
        columns = ", ".join(row)
        inserted = self._one(
            f"INSERT INTO versions ({columns}) VALUES ({', '.join('?' for _ in row)}) RETURNING *",
            list(row.values()),
        )
        assert inserted is not None
        v = Version.from_row(inserted)
        if not v.delete_marker:
            objects, size = objects + 1, size + v.size
        if objects or size:
            self.db.execute(
                "UPDATE buckets SET objects = objects + ?, bytes = bytes + ? WHERE name = ?",
                [objects, size, bucket.name],
            )
        return v, dropped

    def _count(self, bucket: str, v: Version, sign: int) -> None:
        if v.delete_marker:
            return
        self.db.execute(
            "UPDATE buckets SET objects = objects + ?, bytes = bytes + ? WHERE name = ?",
            [sign, sign * v.size, bucket],
        )

    def _drop_blobs(self, keys: list[str]) -> None:
        for key in keys:
            self.blobs.delete(key)

    async def put(
        self,
        caller: Caller,
        name: str,
        key: str,
        body: AsyncIterable[bytes],
        attrs: Attributes,
        checks: Checks,
        conditions: Conditions | None = None,
    ) -> Version:
        bucket = self.authorize(caller, name, "s3:PutObject", key)
        _check_key(key)
        if conditions:
            check_conditions(self._live(name, key), conditions, reading=False)
        written, value, data = await self.receive(bucket.project_id, body, checks)
        blob = "" if data is not None else written.path.name

        def change() -> tuple[Version, list[str]]:
            if conditions:
                check_conditions(self._live(name, key), conditions, reading=False)
            return self._insert(
                self.bucket(name),
                key,
                {
                    "size": written.size,
                    "etag": written.md5,
                    "content_type": attrs.content_type,
                    "headers": attrs.headers,
                    "meta": attrs.meta,
                    "tagging": attrs.tagging,
                    "acl": attrs.acl,
                    "checksum_algorithm": checks.checksum_algorithm,
                    "checksum": value,
                    "checksum_type": "FULL_OBJECT" if value else "",
                    "segments": [[blob or inline.store(self.db, data or b""), written.size]],
                },
            )

        v, dropped = await self.commits.run(change, blob)
        self._drop_blobs(dropped)
        return v

    def _live(self, bucket: str, key: str) -> Version | None:
        v = self.latest(bucket, key)
        return None if v is None or v.delete_marker else v

    async def copy(
        self,
        caller: Caller,
        src_bucket: str,
        src_key: str,
        src_version: str | None,
        dst_bucket: str,
        dst_key: str,
        attrs: Attributes | None,
        source_conditions: Conditions,
        conditions: Conditions | None = None,
    ) -> Version:
        """Copy an object; `attrs` None keeps the source's metadata (directive COPY)."""
        self.authorize(caller, src_bucket, "s3:GetObject", src_key)
        src = self.version(src_bucket, src_key, src_version)
        try:
            check_conditions(src, source_conditions, reading=True)
        except S3Error as exc:
            if exc.code == "NotModified":
                raise S3Error(
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                ) from None
            raise
        if attrs is None:
            if (src_bucket, src_key) == (dst_bucket, dst_key) and src_version is None:
                raise S3Error(
                    "InvalidRequest",
                    "This copy request is illegal because it is trying to copy an object to itself "
                    "without changing the object's metadata, storage class, website redirect "
                    "location or encryption attributes.",
                )
            attrs = Attributes(
                src.content_type, dict(src.headers), dict(src.meta), dict(src.tagging)
            )
        checks = Checks(
            checksum_algorithm=src.checksum_algorithm if "-" not in src.checksum else ""
        )
        return await self.put(
            caller, dst_bucket, dst_key, self.read(src), attrs, checks, conditions
        )

    def delete(
        self, caller: Caller, name: str, key: str, version_id: str | None
    ) -> tuple[str, bool]:
        """Delete an object or a version: (version id affected or created, is a delete marker)."""
        bucket = self.authorize(caller, name, "s3:DeleteObject", key)
        dropped: list[str] = []
        with self.db.atomic():
            if version_id is not None:
                row = self._one(
                    "SELECT * FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
                    [name, key, version_id],
                )
                if row is None:
                    if not _is_version_id(version_id):
                        raise S3Error("InvalidArgument", "Invalid version id specified")
                    return version_id, False
                v = Version.from_row(row)
                self.db.execute("DELETE FROM versions WHERE id = ?", [v.id])
                self._count(name, v, -1)
                dropped = inline.drop(self.db, [s[0] for s in v.segments])
                if v.is_latest:
                    self.db.execute(
                        "UPDATE versions SET is_latest = 1 WHERE id = (SELECT max(id) FROM versions "
                        "WHERE bucket = ? AND key = ?)",
                        [name, key],
                    )
                result = (v.version_id, v.delete_marker)
            elif bucket.versioning:
                v, dropped = self._insert(bucket, key, {"delete_marker": 1})
                result = (v.version_id, True)
            else:
                v_ = self.latest(name, key)
                if v_ is not None:
                    self.db.execute("DELETE FROM versions WHERE id = ?", [v_.id])
                    self._count(name, v_, -1)
                    dropped = inline.drop(self.db, [s[0] for s in v_.segments])
                result = ("", False)
        self._drop_blobs(dropped)
        return result

    def set_object(
        self,
        caller: Caller,
        name: str,
        key: str,
        version_id: str | None,
        action: str,
        **changes: Any,
    ) -> Version:
        """Change a version's tagging, ACL or (Swift POST) metadata in place."""
        self.authorize(caller, name, action, key)
        v = self.version(name, key, version_id)
        for k in ("meta", "tagging", "headers"):
            if k in changes:
                changes[k] = json.dumps(changes[k])
        columns = ", ".join(f"{k} = ?" for k in changes)
        with self.db.atomic():
            self.db.execute(
                f"UPDATE versions SET {columns} WHERE id = ?", [*changes.values(), v.id]
            )
        return self.version(name, key, v.version_id if version_id else None)

    # -- start-up and repair ---------------------------------------------------------------------

    def referenced(self) -> set[str]:
        keys: set[str] = set()
        for (segments,) in self.db.execute("SELECT segments FROM versions").fetchall():
            keys.update(s[0] for s in json.loads(segments))
        keys.update(b for (b,) in self.db.execute("SELECT blob FROM parts").fetchall())
        return keys

    async def reconcile(self) -> None:
        removed = self.sweep()
        if removed:
            log.info("removed %d orphan object blob(s)", removed)

    def sweep(self) -> int:
        """Delete object blobs no row names (a crash between rename and commit, or before the old
        blob of a replaced object was removed). Run before serving."""
        self.blobs.sweep_tmp()
        known = self.referenced()
        removed = 0
        for key in list(self.blobs.keys(BLOB_SUFFIX)):
            if key not in known:
                self.blobs.delete(key)
                removed += 1
        orphans = inline.keys(self.db) - known  # none, unless the database was edited by hand
        if orphans:
            with self.db.atomic():
                inline.drop(self.db, orphans)
            removed += len(orphans)
        return removed


CANNED_ACLS = ("private", "public-read", "public-read-write", "authenticated-read",
               "bucket-owner-read", "bucket-owner-full-control")  # fmt: skip
_READ = ("s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketVersions")


def _public_allows(bucket: Bucket, action: str, key: str) -> bool:
    if bucket.acl in ("public-read", "public-read-write") and action in (
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
    ):
        return True
    if bucket.acl == "public-read-write" and action in ("s3:PutObject", "s3:DeleteObject"):
        return True
    if bucket.policy:
        return policy_allows(json.loads(bucket.policy), bucket.name, action, key)
    return False


def policy_allows(policy: dict[str, Any], bucket: str, action: str, key: str) -> bool:
    """The subset of bucket policies we honour: Allow statements to everyone (Principal "*")."""
    resource = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key else "")
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for st in statements:
        principal = st.get("Principal")
        if principal not in ("*", {"AWS": "*"}, {"AWS": ["*"]}):
            continue
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = st.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if not any(_glob(a, action) for a in actions):
            continue
        if not any(_glob(r, resource) for r in resources):
            continue
        if st.get("Effect") == "Deny":
            return False
        if st.get("Effect") == "Allow":
            allowed = True
    return allowed


def _glob(pattern: str, value: str) -> bool:
    regex = "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$"
    return re.match(regex, value, re.IGNORECASE) is not None


def validate_policy(text: str) -> dict[str, Any]:
    try:
        policy = json.loads(text)
    except ValueError:
        raise S3Error("MalformedPolicy", "Policies must be valid JSON.") from None
    if not isinstance(policy, dict) or "Statement" not in policy:
        raise S3Error("MalformedPolicy", "Missing required field Statement")
    return policy


def _verify(written: Written, checks: Checks, value: str) -> None:
    if checks.length is not None and written.size != checks.length:
        raise S3Error(
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        )
    if checks.md5_b64 is not None:
        raw = checksums.unb64(checks.md5_b64)
        if raw is None or len(raw) != 16:
            raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.")
        if raw.hex() != written.md5:
            raise S3Error(
                "BadDigest", "The Content-MD5 you specified did not match what was received."
            )
    if checks.sha256_hex is not None and checks.sha256_hex != written.sha256:
        raise S3Error(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    claimed = checks.checksum_b64
    if checks.late is not None and checks.checksum_algorithm:
        claimed = checks.late().get(f"x-amz-checksum-{checks.checksum_algorithm}", claimed)
    if claimed is not None and claimed != value:
        raise S3Error(
            "BadDigest",
            f"The {checks.checksum_algorithm.upper()} you specified did not match the calculated checksum.",
        )


def _check_key(key: str) -> None:
    if not key:
        raise S3Error("InvalidArgument", "An object key must not be empty.")
    if len(key.encode()) > 1024:
        raise S3Error("KeyTooLongError", "Your key is too long")


def _is_version_id(value: str) -> bool:
    return value == "null" or re.fullmatch(r"[0-9a-f]{32}", value) is not None


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(moment))

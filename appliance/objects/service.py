"""Buckets and objects: the object store, its state in SQLite and its bytes in the blob layer.

Every write streams to an fsync'd temp blob, renames it into place, and only then commits the row
that points at it; blobs a row no longer names are deleted after the commit. A crash therefore
leaves the old object or the new one, and at worst an orphan blob that `sweep` removes at start-up.
Both S3 and Swift call this module; neither sees the other's wire format. Here are the changes;
finding, reading and access checks are in `reads`, the records and the rules that need no state
in `records`, anonymous access in `policy`, listing in `listing`.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from appliance.blobs import Blobs, BlobTooLarge, Written, digest
from appliance.context import Context
from appliance.objects import checksums, inline
from appliance.objects.commits import GroupCommit
from appliance.objects.errors import S3Error
from appliance.objects.policy import CANNED_ACLS
from appliance.objects.reads import LimitFn, Reader, unlimited
from appliance.objects.records import (
    Attributes,
    Bucket,
    Caller,
    Checks,
    Conditions,
    Version,
    check_conditions,
    check_key,
    is_version_id,
    iso,
    new_version_id,
    select,
    select_one,
    verify_body,
)

log = logging.getLogger("nube.objects")

BLOB_SUFFIX = ".obj"
MIN_PART = 5 * 1024 * 1024
MAX_PARTS = 10_000
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$")

# Keystone registered limits for the object store (service type object-store); sizes in MiB.
DEFAULT_LIMITS = {"object_count_total": 1_000_000, "object_size_total": 1024 * 1024}


class ObjectStore(Reader):
    def __init__(self, db: Database, blobs: Blobs, limit: LimitFn = unlimited) -> None:
        super().__init__(db, blobs, limit)
        self.commits = GroupCommit(db, blobs)

    # -- buckets ---------------------------------------------------------------------------------

    def set_account_meta(self, ctx: Context, changes: dict[str, str]) -> None:
        """Merge `changes` into the caller's Swift account metadata; an empty value removes."""
        if ctx.project_id is None or not ctx.can_write:
            raise S3Error("AccessDenied", "Access Denied")
        meta = {**self.account_meta(ctx.project_id), **changes}
        with self.db.atomic():
            self.db.execute(
                "INSERT OR REPLACE INTO swift_accounts (project_id, meta) VALUES (?, ?)",
                [ctx.project_id, json.dumps({k: v for k, v in meta.items() if v})],
            )

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
        existing = select_one(self.db, "SELECT project_id FROM buckets WHERE name = ?", [name])
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
                [name, ctx.project_id, iso(time.time()), acl],
            )
        return True

    def delete_bucket(self, ctx: Context, name: str) -> None:
        bucket = self.authorize(ctx, name, "s3:DeleteBucket")
        if select_one(
            self.db, "SELECT 1 FROM versions WHERE bucket = ? LIMIT 1", [name]
        ) or select_one(self.db, "SELECT 1 FROM uploads WHERE bucket = ? LIMIT 1", [name]):
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
            verify_body(written, checks, value)
        except BaseException:
            if data is None:
                self.blobs.discard(written)
            raise
        return written, value, data

    def insert_version(
        self, bucket: Bucket, key: str, fields: dict[str, Any]
    ) -> tuple[Version, list[str]]:
        """Make a new latest version inside the caller's transaction; the blobs it orphans."""
        versioned = bucket.versioning == "Enabled"
        version_id = new_version_id() if versioned else "null"
        dropped: list[str] = []
        objects = size = 0  # the bucket's counters move by these
        if not versioned:
            for row in select(
                self.db,
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
        inserted = select_one(
            self.db,
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
        check_key(key)
        if conditions:
            check_conditions(self.live(name, key), conditions, reading=False)
        written, value, data = await self.receive(bucket.project_id, body, checks)
        blob = "" if data is not None else written.path.name

        def change() -> tuple[Version, list[str]]:
            if conditions:
                check_conditions(self.live(name, key), conditions, reading=False)
            return self.insert_version(
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
        self.blobs.drop(dropped)
        return v

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
                row = select_one(
                    self.db,
                    "SELECT * FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
                    [name, key, version_id],
                )
                if row is None:
                    if not is_version_id(version_id):
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
                v, dropped = self.insert_version(bucket, key, {"delete_marker": 1})
                result = (v.version_id, True)
            else:
                v_ = self.latest(name, key)
                if v_ is not None:
                    self.db.execute("DELETE FROM versions WHERE id = ?", [v_.id])
                    self._count(name, v_, -1)
                    dropped = inline.drop(self.db, [s[0] for s in v_.segments])
                result = ("", False)
        self.blobs.drop(dropped)
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

"""Finding and reading buckets and objects, and who may: the read half of the object store.

`ObjectStore` (in `service`) adds every change on top; S3, Swift and the console only ever hold
an `ObjectStore`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlite_utils import Database

from appliance.blobs import Blobs
from appliance.context import Context
from appliance.objects import inline, listing
from appliance.objects.errors import S3Error
from appliance.objects.policy import public_allows
from appliance.objects.records import Bucket, Caller, Version, is_version_id, select, select_one

LimitFn = Callable[[str, str], int]


def unlimited(project_id: str, resource: str) -> int:
    return -1


class Reader:
    def __init__(self, db: Database, blobs: Blobs, limit: LimitFn = unlimited) -> None:
        self.db = db
        self.blobs = blobs
        self.limit = limit

    # -- access ----------------------------------------------------------------------------------

    def bucket(self, name: str) -> Bucket:
        row = select_one(self.db, "SELECT * FROM buckets WHERE name = ?", [name])
        if row is None:
            raise S3Error("NoSuchBucket", "The specified bucket does not exist", BucketName=name)
        return Bucket.from_row(row)

    def exists(self, name: str) -> bool:
        return select_one(self.db, "SELECT 1 FROM buckets WHERE name = ?", [name]) is not None

    def cors(self, name: str) -> list[dict[str, Any]]:
        """A bucket's CORS rules (none for a bucket that does not exist)."""
        row = select_one(self.db, "SELECT cors FROM buckets WHERE name = ?", [name])
        return json.loads(row["cors"]) if row and row["cors"] else []

    def account_meta(self, project_id: str) -> dict[str, str]:
        """A project's Swift account metadata."""
        row = select_one(
            self.db, "SELECT meta FROM swift_accounts WHERE project_id = ?", [project_id]
        )
        return json.loads(row["meta"]) if row else {}

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
        if public_allows(bucket, action, key):
            return bucket
        raise S3Error("AccessDenied", "Access Denied")

    # -- buckets ---------------------------------------------------------------------------------

    def list_buckets(self, ctx: Context) -> list[Bucket]:
        rows = select(
            self.db, "SELECT * FROM buckets WHERE project_id = ? ORDER BY name", [ctx.project_id]
        )
        return [Bucket.from_row(r) for r in rows]

    def usage(self, project_id: str) -> tuple[int, int, int]:
        """(buckets, objects, bytes) of a project, from the buckets' counters."""
        row = select_one(
            self.db,
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
        row = select_one(
            self.db,
            "SELECT * FROM versions WHERE bucket = ? AND key = ? AND is_latest = 1",
            [bucket, key],
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
        row = select_one(
            self.db,
            "SELECT * FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
            [bucket, key, version_id],
        )
        if row is None:
            if not is_version_id(version_id):
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
        return listing.objects(self.db, bucket, prefix, delimiter, after, max_keys)

    def list_versions(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        version_marker: str,
        max_keys: int,
    ) -> tuple[list[Version | str], bool]:
        return listing.versions(
            self.db, bucket, prefix, delimiter, key_marker, version_marker, max_keys
        )

    def live(self, bucket: str, key: str) -> Version | None:
        v = self.latest(bucket, key)
        return None if v is None or v.delete_marker else v

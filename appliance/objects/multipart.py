"""Multipart uploads. Each part is one blob, written once; completing an upload makes those very
blobs the object's segments (no concatenation), so a part's bytes are never copied again."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any

from appliance.objects import checksums
from appliance.objects.errors import S3Error
from appliance.objects.records import (
    Attributes,
    Caller,
    Checks,
    Conditions,
    Expected,
    Version,
    check_conditions,
    select,
    select_one,
    strip_etag,
)
from appliance.objects.service import MAX_PARTS, MIN_PART, ObjectStore


@dataclass(frozen=True, slots=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: float
    content_type: str
    headers: dict[str, str]
    meta: dict[str, str]
    checksum_algorithm: str
    checksum_type: str
    tagging: dict[str, str]
    acl: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Upload:
        return cls(
            **{
                **row,
                "headers": json.loads(row["headers"]),
                "meta": json.loads(row["meta"]),
                "tagging": json.loads(row["tagging"]),
            }
        )


@dataclass(frozen=True, slots=True)
class Part:
    part_number: int
    blob: str
    size: int
    etag: str
    checksum: str
    modified: float


class Multipart:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.db = store.db

    def create(
        self, caller: Caller, name: str, key: str, attrs: Attributes, algorithm: str, kind: str
    ) -> Upload:
        self.store.authorize(caller, name, "s3:PutObject", key)
        if kind and kind not in ("COMPOSITE", "FULL_OBJECT"):
            raise S3Error("InvalidRequest", f"Unknown checksum type {kind}.")
        if algorithm and algorithm not in checksums.ALGORITHMS:
            raise S3Error("InvalidRequest", f"Unknown checksum algorithm {algorithm}.")
        if algorithm and not kind:
            kind = "FULL_OBJECT" if algorithm == "crc64nvme" else "COMPOSITE"
        if (kind == "FULL_OBJECT" and algorithm not in checksums.CRCS) or (
            kind == "COMPOSITE" and algorithm == "crc64nvme"
        ):
            raise S3Error(
                "InvalidRequest",
                f"The {kind} checksum type cannot be used with the "
                f"{algorithm.upper() or 'null'} checksum algorithm.",
            )
        upload_id = uuid.uuid4().hex
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO uploads (upload_id, bucket, key, initiated, content_type, headers, "
                "meta, checksum_algorithm, checksum_type, tagging, acl) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    upload_id, name, key, time.time(), attrs.content_type,
                    json.dumps(attrs.headers), json.dumps(attrs.meta), algorithm, kind,
                    json.dumps(attrs.tagging), attrs.acl,
                ],
            )  # fmt: skip
        return self.upload(name, key, upload_id)

    def upload(self, name: str, key: str, upload_id: str) -> Upload:
        row = select_one(
            self.store.db,
            "SELECT * FROM uploads WHERE upload_id = ? AND bucket = ? AND key = ?",
            [upload_id, name, key],
        )
        if row is None:
            raise S3Error(
                "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be invalid, or the upload "
                "may have been aborted or completed.",
                UploadId=upload_id,
            )
        return Upload.from_row(row)

    def parts(self, upload_id: str) -> list[Part]:
        rows = select(
            self.store.db,
            "SELECT part_number, blob, size, etag, checksum, modified FROM parts "
            "WHERE upload_id = ? ORDER BY part_number",
            [upload_id],
        )
        return [Part(**r) for r in rows]

    async def upload_part(
        self,
        caller: Caller,
        name: str,
        key: str,
        upload_id: str,
        number: int,
        body: AsyncIterable[bytes],
        checks: Checks,
    ) -> Part:
        bucket = self.store.authorize(caller, name, "s3:PutObject", key)
        up = self.upload(name, key, upload_id)
        if not 1 <= number <= MAX_PARTS:
            raise S3Error(
                "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive"
            )
        if up.checksum_algorithm and not checks.checksum_algorithm:
            checks.checksum_algorithm = up.checksum_algorithm
        elif up.checksum_algorithm and checks.checksum_algorithm != up.checksum_algorithm:
            raise S3Error(
                "InvalidRequest",
                f"Checksum Type mismatch occurred, expected checksum Type: "
                f"{up.checksum_algorithm}, actual checksum Type: {checks.checksum_algorithm}",
            )
        written, value, _ = await self.store.receive(bucket.project_id, body, checks, part=True)
        blob = written.path.name

        def change() -> dict[str, Any] | None:
            self.upload(name, key, upload_id)  # not aborted meanwhile
            old = select_one(
                self.store.db,
                "SELECT blob FROM parts WHERE upload_id = ? AND part_number = ?",
                [upload_id, number],
            )
            self.db.execute(
                "INSERT OR REPLACE INTO parts (upload_id, part_number, blob, size, etag, "
                "checksum, modified) VALUES (?,?,?,?,?,?,?)",
                [upload_id, number, blob, written.size, written.md5, value, time.time()],
            )
            return old

        old = await self.store.commits.run(change, blob)
        if old:
            self.store.blobs.drop([old["blob"]])
        return Part(number, blob, written.size, written.md5, value, time.time())

    async def copy_part(
        self,
        caller: Caller,
        name: str,
        key: str,
        upload_id: str,
        number: int,
        src_bucket: str,
        src_key: str,
        src_version: str | None,
        byte_range: tuple[int, int] | None,
        source_conditions: Conditions,
    ) -> Part:
        self.store.authorize(caller, src_bucket, "s3:GetObject", src_key)
        src = self.store.version(src_bucket, src_key, src_version)
        check_conditions(src, source_conditions, reading=False)
        start, end = byte_range if byte_range else (0, src.size)
        if byte_range and (start >= src.size or end > src.size or start >= end):
            raise S3Error("InvalidRange", "The requested range is not satisfiable")
        return await self.upload_part(
            caller, name, key, upload_id, number, self.store.read(src, start, end), Checks()
        )

    async def complete(
        self,
        caller: Caller,
        name: str,
        key: str,
        upload_id: str,
        wanted: list[tuple[int, str, str]],
        conditions: Conditions | None = None,
        expected: Expected | None = None,
    ) -> Version:
        """Complete with the (part number, etag, checksum or "") list the client sent, and what
        its headers say the whole object is (size, full-object or composite checksum)."""
        bucket = self.store.authorize(caller, name, "s3:PutObject", key)
        up = self.upload(name, key, upload_id)
        if not wanted:
            raise S3Error("MalformedXML", "You must specify at least one part")
        have = {p.part_number: p for p in self.parts(upload_id)}
        chosen = []
        previous = 0
        for number, etag, checksum in wanted:
            if number <= previous:
                raise S3Error("InvalidPartOrder", "The list of parts was not in ascending order.")
            previous = number
            part = have.get(number)
            if part is None or strip_etag(etag) != part.etag:
                raise S3Error(
                    "InvalidPart",
                    "One or more of the specified parts could not be found.",
                    PartNumber=str(number),
                )
            if checksum and part.checksum and checksum != part.checksum:
                raise S3Error("InvalidPart", f"The checksum of part {number} does not match.")
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART:
                raise S3Error(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed object size.",
                )
        md5s = b"".join(bytes.fromhex(p.etag) for p in chosen)
        etag = f"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(chosen)}"
        total = sum(p.size for p in chosen)
        value = ""
        if up.checksum_algorithm and all(p.checksum for p in chosen):
            if up.checksum_type == "FULL_OBJECT":
                pieces = [(p.checksum, p.size) for p in chosen]
                value = checksums.combined(up.checksum_algorithm, pieces)
            else:
                value = checksums.composite(up.checksum_algorithm, [p.checksum for p in chosen])
        check_expected(up, expected or Expected(), total, value)
        left = self.store.room(bucket.project_id)
        if left is not None and total > left:
            raise S3Error("QuotaExceeded", "The byte quota of the project is exceeded.")
        unused = [p.blob for n, p in have.items() if n not in {c.part_number for c in chosen}]

        def change() -> tuple[Version, list[str]]:
            self.upload(name, key, upload_id)
            now = {p.part_number: p.blob for p in self.parts(upload_id)}
            if any(
                now.get(p.part_number) != p.blob for p in chosen
            ):  # a part re-uploaded meanwhile
                raise S3Error("InvalidPart", "A part changed while the upload was being completed.")
            if conditions:
                check_conditions(self.store.live(name, key), conditions, reading=False)
            v, dropped = self.store.insert_version(
                self.store.bucket(name),
                key,
                {
                    "size": total,
                    "etag": etag,
                    "content_type": up.content_type,
                    "headers": up.headers,
                    "meta": up.meta,
                    "tagging": up.tagging,
                    "acl": up.acl,
                    "checksum_algorithm": up.checksum_algorithm if value else "",
                    "checksum": value,
                    "checksum_type": up.checksum_type if value else "",
                    "parts": [p.size for p in chosen],
                    "segments": [[p.blob, p.size] for p in chosen],
                },
            )
            self.db.execute("DELETE FROM parts WHERE upload_id = ?", [upload_id])
            self.db.execute("DELETE FROM uploads WHERE upload_id = ?", [upload_id])
            return v, dropped

        v, dropped = await self.store.commits.run(change, "")
        self.store.blobs.drop(unused + dropped)
        return v

    def abort(self, caller: Caller, name: str, key: str, upload_id: str) -> None:
        self.store.authorize(caller, name, "s3:AbortMultipartUpload", key)
        self.upload(name, key, upload_id)
        blobs = [p.blob for p in self.parts(upload_id)]
        with self.db.atomic():
            self.db.execute("DELETE FROM parts WHERE upload_id = ?", [upload_id])
            self.db.execute("DELETE FROM uploads WHERE upload_id = ?", [upload_id])
        self.store.blobs.drop(blobs)

    def list_uploads(
        self,
        caller: Caller,
        name: str,
        prefix: str,
        key_marker: str,
        id_marker: str,
        max_uploads: int,
    ) -> tuple[list[Upload], bool]:
        self.store.authorize(caller, name, "s3:ListBucketMultipartUploads")
        sql = "SELECT * FROM uploads WHERE bucket = ? AND substr(key, 1, ?) = ?"
        params: list[Any] = [name, len(prefix), prefix]
        if key_marker:
            sql += " AND (key > ? OR (key = ? AND upload_id > ?))"
            params += [key_marker, key_marker, id_marker]
        sql += " ORDER BY key, initiated, upload_id LIMIT ?"
        params.append(max_uploads + 1)
        rows = [Upload.from_row(r) for r in select(self.store.db, sql, params)]
        return rows[:max_uploads], len(rows) > max_uploads


def check_expected(up: Upload, expected: Expected, total: int, value: str) -> None:
    """Refuse a completion whose headers disagree with the parts (nothing is committed)."""
    if expected.size is not None and expected.size != total:
        raise S3Error(
            "InvalidRequest",
            f"The provided 'x-amz-mp-object-size' header value {expected.size} does not match "
            f"what was computed: {total}",
        )
    if expected.checksum_type and expected.checksum_type != up.checksum_type:
        raise S3Error(
            "InvalidRequest",
            f"The upload was created using the {up.checksum_type or 'null'} checksum mode. "
            f"The complete request must use the same checksum mode.",
        )
    for algorithm, claimed in expected.checksums.items():
        if algorithm != up.checksum_algorithm:
            raise S3Error(
                "InvalidRequest",
                f"The upload was created using a {up.checksum_algorithm or 'null'} checksum. "
                f"The complete request had checksums for {algorithm}.",
            )
        # a composite value may come with or without its "-<parts>" suffix
        if claimed not in (value, value.rsplit("-", 1)[0]):
            raise S3Error(
                "BadDigest",
                f"The {algorithm.upper()} you specified did not match the calculated checksum.",
            )

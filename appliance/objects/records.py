"""The object store's records (buckets, versions) and the rules on them that need no database
beyond reading rows: conditional requests, body checks, keys and version ids."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from appliance.blobs import Written
from appliance.context import Context
from appliance.objects import checksums
from appliance.objects.errors import S3Error

Caller = Context | None  # None: an anonymous request


def select(
    db: Database, sql: str, params: list[Any] | tuple[Any, ...] = ()
) -> list[dict[str, Any]]:
    cursor = db.execute(sql, list(params))
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def select_one(
    db: Database, sql: str, params: list[Any] | tuple[Any, ...] = ()
) -> dict[str, Any] | None:
    found = select(db, sql, params)
    return found[0] if found else None


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
                "headers": _loads(row["headers"]),
                "meta": _loads(row["meta"]),
                "tagging": _loads(row["tagging"]),
                "parts": _loads(row["parts"]),
                "segments": [tuple(s) for s in json.loads(row["segments"])],
            }
        )


def _loads(text: str) -> Any:
    """json.loads, without the parser for the empty {} and [] most columns hold (a listing page
    decodes thousands of rows)."""
    if text == "{}":
        return {}
    if text == "[]":
        return []
    return json.loads(text)


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
class Expected:
    """What a CompleteMultipartUpload request's headers say the whole object is."""

    checksums: dict[str, str] = field(default_factory=dict)  # algorithm: base64 value
    checksum_type: str = ""
    size: int | None = None  # x-amz-mp-object-size

    @classmethod
    def of_headers(cls, headers: Mapping[str, str]) -> Expected:
        size = headers.get("x-amz-mp-object-size")
        if size is not None and not size.isdigit():
            raise S3Error("InvalidArgument", "x-amz-mp-object-size must be a non-negative integer.")
        return cls(
            {a: v for a in checksums.ALGORITHMS if (v := headers.get(f"x-amz-checksum-{a}"))},
            headers.get("x-amz-checksum-type", "").upper(),
            None if size is None else int(size),
        )


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


def verify_body(written: Written, checks: Checks, value: str) -> None:
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


def check_key(key: str) -> None:
    if not key:
        raise S3Error("InvalidArgument", "An object key must not be empty.")
    if len(key.encode()) > 1024:
        raise S3Error("KeyTooLongError", "Your key is too long")


def is_version_id(value: str) -> bool:
    return value == "null" or re.fullmatch(r"[0-9a-f]{32}", value) is not None


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(moment))

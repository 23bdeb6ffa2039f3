"""One async handler per S3 operation on objects, listings and multipart uploads (bucket settings
are in s3_buckets): read the request, call the store, answer with wire.*."""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import Response

from appliance.objects import wire
from appliance.objects.errors import S3Error
from appliance.objects.multipart import Multipart
from appliance.objects.records import Expected, check_conditions
from appliance.objects.s3_routes import (
    Handler,
    S3Request,
    attributes,
    body_and_checks,
    canned_acl,
    conditions,
    copy_source,
    max_keys,
    object_headers,
    parse_range,
    small_body,
    streaming,
    xml,
)
from appliance.objects.service import ObjectStore

HANDLERS: dict[str, Handler] = {}
SMALL_READ = 256 * 1024  # GETs up to this size are answered from memory rather than streamed


def handles(name: str):  # type: ignore[no-untyped-def]
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return register


def store_of(r: S3Request) -> ObjectStore:
    return r.cloud.objects


def multipart_of(r: S3Request) -> Multipart:
    return r.cloud.multipart


def require_owner(r: S3Request, action: str) -> None:
    bucket = store_of(r).authorize(r.caller, r.op.bucket, action)
    if not store_of(r).owns(r.caller, bucket):
        raise S3Error("AccessDenied", "Access Denied")


def require_signed_in(r: S3Request) -> None:
    if r.caller is None:
        raise S3Error("AccessDenied", "Access Denied")


# -- listings ------------------------------------------------------------------------------------


@handles("ListObjectsV2")
async def list_v2(r: S3Request) -> Response:
    bucket = store_of(r).authorize(r.caller, r.op.bucket, "s3:ListBucket")
    q = r.query
    token = q.get("continuation-token")
    after = q.get("start-after", "")
    if token:
        try:
            after = bytes.fromhex(token).decode()
        except ValueError:
            raise S3Error(
                "InvalidArgument", "The continuation token provided is incorrect"
            ) from None
    limit = max_keys(q)
    objects, prefixes, truncated, last = store_of(r).list_objects(
        bucket.name, q.get("prefix", ""), q.get("delimiter", ""), after, limit
    )
    next_token = last.encode().hex() if truncated else ""
    return xml(
        wire.list_objects_xml(bucket, objects, prefixes, truncated, q, True, last, next_token)
    )


@handles("ListObjects")
async def list_v1(r: S3Request) -> Response:
    bucket = store_of(r).authorize(r.caller, r.op.bucket, "s3:ListBucket")
    q = r.query
    objects, prefixes, truncated, last = store_of(r).list_objects(
        bucket.name, q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", ""), max_keys(q)
    )
    return xml(wire.list_objects_xml(bucket, objects, prefixes, truncated, q, False, last, ""))


@handles("ListObjectVersions")
async def list_versions(r: S3Request) -> Response:
    bucket = store_of(r).authorize(r.caller, r.op.bucket, "s3:ListBucketVersions")
    q = r.query
    entries, truncated = store_of(r).list_versions(
        bucket.name,
        q.get("prefix", ""),
        q.get("delimiter", ""),
        q.get("key-marker", ""),
        q.get("version-id-marker", ""),
        max_keys(q),
    )
    return xml(wire.list_versions_xml(bucket, entries, truncated, q))


# -- objects -------------------------------------------------------------------------------------


@handles("PutObject")
async def put_object(r: S3Request) -> Response:
    body, checks = body_and_checks(r)
    v = await store_of(r).put(
        r.caller, r.op.bucket, r.op.key, body, attributes(r.headers), checks, conditions(r.headers)
    )
    headers = {"ETag": f'"{v.etag}"'}
    if v.version_id != "null":
        headers["x-amz-version-id"] = v.version_id
    if v.checksum:
        headers[f"x-amz-checksum-{v.checksum_algorithm}"] = v.checksum
        headers["x-amz-checksum-type"] = v.checksum_type
    return Response(b"", 200, headers=headers)


async def _get(r: S3Request, head: bool) -> Response:
    store = store_of(r)
    try:
        store.authorize(r.caller, r.op.bucket, "s3:GetObject", r.op.key)
        v = store.version(r.op.bucket, r.op.key, r.query.get("versionId"))
    except S3Error as exc:
        # An object made public-read by its own ACL is readable by anyone.
        if exc.code != "AccessDenied":
            raise
        v = store.version(r.op.bucket, r.op.key, r.query.get("versionId"))
        if v.acl not in ("public-read", "public-read-write"):
            raise
    check_conditions(v, conditions(r.headers), reading=True)
    start, end, status = 0, v.size, 200
    part = r.query.get("partNumber")
    if part is not None:
        n = int(part) if part.isdigit() else 0
        sizes = v.parts or [v.size]
        if not 1 <= n <= len(sizes):
            raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable")
        start = sum(sizes[: n - 1])
        end = start + sizes[n - 1]
        status = 206 if v.parts else 200
    elif "range" in r.headers:
        found = parse_range(r.headers["range"], v.size)
        if found is not None:
            start, end = found
            status = 206
    headers = object_headers(v, r.headers, ranged=status == 206)
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{v.size}"
    for name in (
        "content-type",
        "content-language",
        "expires",
        "cache-control",
        "content-disposition",
        "content-encoding",
    ):
        override = r.query.get(f"response-{name}")
        if override is not None:
            headers[name.title()] = override
    headers["Content-Length"] = str(end - start)
    if head:
        return Response(b"", status, headers=headers)
    if end - start <= SMALL_READ:  # whole in memory: no streaming task, one thread hop
        return Response(await store.read_all(v, start, end), status, headers=headers)
    return streaming(store.read(v, start, end), status, headers)


@handles("GetObject")
async def get_object(r: S3Request) -> Response:
    return await _get(r, head=False)


@handles("HeadObject")
async def head_object(r: S3Request) -> Response:
    return await _get(r, head=True)


@handles("DeleteObject")
async def delete_object(r: S3Request) -> Response:
    version_id, marker = store_of(r).delete(
        r.caller, r.op.bucket, r.op.key, r.query.get("versionId")
    )
    headers = {}
    if version_id and version_id != "":
        headers["x-amz-version-id"] = version_id
    if marker:
        headers["x-amz-delete-marker"] = "true"
    return Response(b"", 204, headers=headers)


@handles("DeleteObjects")
async def delete_objects(r: S3Request) -> Response:
    objects, quiet = wire.parse_delete(await small_body(r))
    store_of(r).authorize(r.caller, r.op.bucket, "s3:DeleteObject")
    deleted, errors = [], []
    for key, version_id in objects:
        try:
            vid, marker = store_of(r).delete(r.caller, r.op.bucket, key, version_id)
            deleted.append((key, version_id or "", marker, vid if marker else ""))
        except S3Error as exc:
            errors.append((key, exc.code, exc.message))
    return xml(wire.delete_result_xml(deleted, errors, quiet))


@handles("CopyObject")
async def copy_object(r: S3Request) -> Response:
    await small_body(r)
    src_bucket, src_key, src_version = copy_source(r.headers["x-amz-copy-source"])
    directive = r.headers.get("x-amz-metadata-directive", "COPY").upper()
    attrs = attributes(r.headers) if directive == "REPLACE" else None
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive.")
    v = await store_of(r).copy(
        r.caller,
        src_bucket,
        src_key,
        src_version,
        r.op.bucket,
        r.op.key,
        attrs,
        conditions(r.headers, "x-amz-copy-source-"),
        conditions(r.headers),
    )
    if attrs is None and r.headers.get("x-amz-tagging-directive", "COPY").upper() == "REPLACE":
        v = store_of(r).set_object(
            r.caller,
            r.op.bucket,
            r.op.key,
            None,
            "s3:PutObject",
            tagging=wire.parse_tagging_header(r.headers.get("x-amz-tagging", "")),
        )
    headers = {"x-amz-version-id": v.version_id} if v.version_id != "null" else {}
    return xml(wire.copy_result_xml(v), headers=headers)


@handles("GetObjectTagging")
async def get_object_tagging(r: S3Request) -> Response:
    store_of(r).authorize(r.caller, r.op.bucket, "s3:GetObjectTagging", r.op.key)
    v = store_of(r).version(r.op.bucket, r.op.key, r.query.get("versionId"))
    return xml(wire.tagging_xml(v.tagging))


@handles("PutObjectTagging")
async def put_object_tagging(r: S3Request) -> Response:
    tags = wire.parse_tagging(await small_body(r))
    store_of(r).set_object(
        r.caller,
        r.op.bucket,
        r.op.key,
        r.query.get("versionId"),
        "s3:PutObjectTagging",
        tagging=tags,
    )
    return Response(b"", 200)


@handles("DeleteObjectTagging")
async def delete_object_tagging(r: S3Request) -> Response:
    store_of(r).set_object(
        r.caller, r.op.bucket, r.op.key, r.query.get("versionId"), "s3:PutObjectTagging", tagging={}
    )
    return Response(b"", 204)


@handles("GetObjectAcl")
async def get_object_acl(r: S3Request) -> Response:
    bucket = store_of(r).authorize(r.caller, r.op.bucket, "s3:GetObjectAcl", r.op.key)
    v = store_of(r).version(r.op.bucket, r.op.key, r.query.get("versionId"))
    return xml(wire.acl_xml(bucket.project_id, v.acl or "private"))


@handles("PutObjectAcl")
async def put_object_acl(r: S3Request) -> Response:
    acl = await canned_acl(r)
    store_of(r).set_object(
        r.caller, r.op.bucket, r.op.key, r.query.get("versionId"), "s3:PutObjectAcl", acl=acl
    )
    return Response(b"", 200)


@handles("DeleteObjectAcl")
async def delete_object_acl(r: S3Request) -> Response:
    raise S3Error("NotImplemented", "DeleteObjectAcl is not an S3 operation.")


# -- multipart -----------------------------------------------------------------------------------


@handles("CreateMultipartUpload")
async def create_upload(r: S3Request) -> Response:
    await small_body(r)
    algorithm = r.headers.get("x-amz-checksum-algorithm", "").lower()
    up = multipart_of(r).create(
        r.caller, r.op.bucket, r.op.key, attributes(r.headers), algorithm,
        r.headers.get("x-amz-checksum-type", "").upper(),
    )  # fmt: skip
    headers = {}
    if up.checksum_algorithm:
        headers["x-amz-checksum-algorithm"] = up.checksum_algorithm.upper()
        headers["x-amz-checksum-type"] = up.checksum_type
    return xml(wire.initiate_xml(up), headers=headers)


def _part_number(r: S3Request) -> int:
    value = r.query.get("partNumber", "")
    if not value.isdigit():
        raise S3Error(
            "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive"
        )
    return int(value)


@handles("UploadPart")
async def upload_part(r: S3Request) -> Response:
    body, checks = body_and_checks(r)
    part = await multipart_of(r).upload_part(
        r.caller, r.op.bucket, r.op.key, r.query["uploadId"], _part_number(r), body, checks
    )
    headers = {"ETag": f'"{part.etag}"'}
    if part.checksum:
        headers[f"x-amz-checksum-{checks.checksum_algorithm}"] = part.checksum
    return Response(b"", 200, headers=headers)


@handles("UploadPartCopy")
async def upload_part_copy(r: S3Request) -> Response:
    await small_body(r)
    src_bucket, src_key, src_version = copy_source(r.headers["x-amz-copy-source"])
    byte_range = None
    if "x-amz-copy-source-range" in r.headers:
        value = r.headers["x-amz-copy-source-range"]
        try:
            first, last = value.removeprefix("bytes=").split("-")
            byte_range = (int(first), int(last) + 1)
        except ValueError:
            raise S3Error(
                "InvalidArgument",
                "The x-amz-copy-source-range value must be of the form bytes=first-last.",
            ) from None
    up = multipart_of(r).upload(r.op.bucket, r.op.key, r.query["uploadId"])
    part = await multipart_of(r).copy_part(
        r.caller, r.op.bucket, r.op.key, r.query["uploadId"], _part_number(r),
        src_bucket, src_key, src_version, byte_range, conditions(r.headers, "x-amz-copy-source-"),
    )  # fmt: skip
    return xml(wire.copy_part_xml(part, up.checksum_algorithm))


@handles("ListParts")
async def list_parts(r: S3Request) -> Response:
    bucket = store_of(r).authorize(r.caller, r.op.bucket, "s3:ListMultipartUploadParts")
    up = multipart_of(r).upload(r.op.bucket, r.op.key, r.query["uploadId"])
    marker = int(r.query.get("part-number-marker", "0") or 0)
    limit = max_keys(r.query, "max-parts")
    parts = [p for p in multipart_of(r).parts(up.upload_id) if p.part_number > marker]
    return xml(
        wire.list_parts_xml(up, bucket.project_id, parts[:limit], len(parts) > limit, r.query)
    )


@handles("ListMultipartUploads")
async def list_uploads(r: S3Request) -> Response:
    q = r.query
    uploads, truncated = multipart_of(r).list_uploads(
        r.caller, r.op.bucket, q.get("prefix", ""), q.get("key-marker", ""),
        q.get("upload-id-marker", ""), max_keys(q, "max-uploads"),
    )  # fmt: skip
    return xml(wire.list_uploads_xml(store_of(r).bucket(r.op.bucket), uploads, truncated, q))


@handles("CompleteMultipartUpload")
async def complete_upload(r: S3Request) -> Response:
    wanted = wire.parse_complete(await small_body(r, checksum_of_body=False))
    v = await multipart_of(r).complete(
        r.caller, r.op.bucket, r.op.key, r.query["uploadId"], wanted, conditions(r.headers),
        Expected.of_headers(r.headers),
    )  # fmt: skip
    location = (
        f"{r.request.url.scheme}://{r.headers.get('host', '')}/{r.op.bucket}/{quote(r.op.key)}"
    )
    headers = {"x-amz-version-id": v.version_id} if v.version_id != "null" else {}
    return xml(wire.complete_xml(location, v), headers=headers)


@handles("AbortMultipartUpload")
async def abort_upload(r: S3Request) -> Response:
    multipart_of(r).abort(r.caller, r.op.bucket, r.op.key, r.query["uploadId"])
    return Response(b"", 204)

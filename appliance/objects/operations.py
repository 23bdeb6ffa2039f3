"""Name each S3 request before anything else happens (as Garage does): the operation decides who may
call it and which handler runs. Unknown combinations become NotImplemented, never a guess."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from appliance.objects.errors import S3Error

# Sub-resources we do not implement: answering NotImplemented beats silently treating
# e.g. PUT ?lifecycle as a PutObject.
_UNSUPPORTED = ("lifecycle", "website", "logging", "notification", "replication", "encryption",
                "object-lock", "retention", "legal-hold", "accelerate", "requestPayment",
                "analytics", "metrics", "inventory", "intelligent-tiering", "ownershipControls",
                "publicAccessBlock", "restore", "select", "torrent", "attributes")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    bucket: str = ""
    key: str = ""


def split_path(path: str, host: str, is_bucket: object) -> tuple[str, str]:
    """(bucket, key) from path-style `/bucket/key` or virtual-host style `bucket.host/key`.

    A host name (not an IP) whose first label is an existing bucket means virtual-host style."""
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    first, _, rest = hostname.partition(".")
    if rest and not _is_ip(hostname) and callable(is_bucket) and is_bucket(first):
        return first, path[1:]
    bucket, _, key = path[1:].partition("/")
    return bucket, key


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def classify(
    method: str, bucket: str, key: str, query: dict[str, str], headers: dict[str, str]
) -> Operation:
    q = query
    for sub in _UNSUPPORTED:
        if sub in q:
            raise S3Error("NotImplemented", f"The {sub} sub-resource is not implemented.")
    if not bucket:
        if method == "GET":
            return Operation("ListBuckets")
        raise S3Error(
            "NotImplemented", "A header you provided implies functionality that is not implemented."
        )
    if not key:
        table = {
            ("GET", "location"): "GetBucketLocation",
            ("GET", "versioning"): "GetBucketVersioning",
            ("PUT", "versioning"): "PutBucketVersioning",
            ("GET", "versions"): "ListObjectVersions",
            ("GET", "uploads"): "ListMultipartUploads",
            ("GET", "cors"): "GetBucketCors",
            ("PUT", "cors"): "PutBucketCors",
            ("DELETE", "cors"): "DeleteBucketCors",
            ("GET", "tagging"): "GetBucketTagging",
            ("PUT", "tagging"): "PutBucketTagging",
            ("DELETE", "tagging"): "DeleteBucketTagging",
            ("GET", "acl"): "GetBucketAcl",
            ("PUT", "acl"): "PutBucketAcl",
            ("GET", "policy"): "GetBucketPolicy",
            ("PUT", "policy"): "PutBucketPolicy",
            ("DELETE", "policy"): "DeleteBucketPolicy",
            ("POST", "delete"): "DeleteObjects",
        }
        for (m, sub), name in table.items():
            if method == m and sub in q:
                return Operation(name, bucket)
        plain = {
            "GET": "ListObjectsV2" if q.get("list-type") == "2" else "ListObjects",
            "HEAD": "HeadBucket",
            "PUT": "CreateBucket",
            "DELETE": "DeleteBucket",
        }
        if method in plain:
            return Operation(plain[method], bucket)
        if method == "OPTIONS":
            return Operation("Preflight", bucket)
        raise S3Error("NotImplemented", f"{method} on a bucket is not implemented.")
    if "uploadId" in q:
        if method == "PUT" and "partNumber" in q:
            return Operation(
                "UploadPartCopy" if "x-amz-copy-source" in headers else "UploadPart", bucket, key
            )
        mp_name = {
            "GET": "ListParts",
            "POST": "CompleteMultipartUpload",
            "DELETE": "AbortMultipartUpload",
        }.get(method)
        if mp_name:
            return Operation(mp_name, bucket, key)
    if method == "POST" and "uploads" in q:
        return Operation("CreateMultipartUpload", bucket, key)
    for sub, names in (("tagging", "ObjectTagging"), ("acl", "ObjectAcl")):
        if sub in q:
            verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method)
            if verb:
                return Operation(verb + names, bucket, key)
    plain = {
        "GET": "GetObject",
        "HEAD": "HeadObject",
        "PUT": "CopyObject" if "x-amz-copy-source" in headers else "PutObject",
        "DELETE": "DeleteObject",
        "OPTIONS": "Preflight",
    }
    if method in plain:
        return Operation(plain[method], bucket, key)
    raise S3Error("NotImplemented", f"{method} on an object is not implemented.")

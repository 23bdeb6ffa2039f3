"""S3 XML, both ways: pure functions from values to documents and from request bodies to values.

Shapes follow https://docs.aws.amazon.com/AmazonS3/latest/API/ (namespace
http://s3.amazonaws.com/doc/2006-03-01/); checked against boto3, awscli, s3cmd and rclone in tests.
"""

from __future__ import annotations

import functools
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from appliance.objects.errors import S3Error
from appliance.objects.multipart import Part, Upload
from appliance.objects.records import Bucket, Version

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
OWNER_NAME = "nube"


def iso(moment: float) -> str:
    return f"{_iso_second(int(moment))}.{int(moment % 1 * 1000):03d}Z"


@functools.lru_cache(maxsize=256)
def _iso_second(second: int) -> str:
    """The whole-second part; a listing page's objects were mostly written in the same few seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def http_date(moment: float) -> str:
    return formatdate(int(moment), usegmt=True)


def _doc(root: str) -> ET.Element:
    return ET.Element(root, xmlns=NS)


def _add(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def render(root: ET.Element) -> bytes:
    # Serialized to str, then encoded: the same bytes as encoding="utf-8", a third faster.
    body = ET.tostring(root, encoding="unicode")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode()


def _owner(parent: ET.Element, project_id: str, tag: str = "Owner") -> None:
    owner = _add(parent, tag)
    _add(owner, "ID", project_id)
    _add(owner, "DisplayName", project_id)


def error_xml(err: S3Error, resource: str, request_id: str) -> bytes:
    root = ET.Element("Error")
    _add(root, "Code", err.code)
    _add(root, "Message", err.message)
    for k, v in err.extra.items():
        _add(root, k, v)
    _add(root, "Resource", resource)
    _add(root, "RequestId", request_id)
    return render(root)


def list_buckets_xml(project_id: str, buckets: Iterable[Bucket]) -> bytes:
    root = _doc("ListAllMyBucketsResult")
    _owner(root, project_id)
    el = _add(root, "Buckets")
    for b in buckets:
        item = _add(el, "Bucket")
        _add(item, "Name", b.name)
        _add(item, "CreationDate", b.created_at)
    return render(root)


def location_xml(region: str) -> bytes:
    root = _doc("LocationConstraint")
    # us-east-1 is the empty constraint.
    if region != "us-east-1":
        root.text = region
    return render(root)


def _enc(value: str, url: bool) -> str:
    return quote(value, safe="/") if url else value


def _contents(parent: ET.Element, v: Version, owner: str | None, url: bool) -> None:
    item = _add(parent, "Contents")
    _add(item, "Key", _enc(v.key, url))
    _add(item, "LastModified", iso(v.modified))
    _add(item, "ETag", f'"{v.etag}"')
    if v.checksum_algorithm:
        _add(item, "ChecksumAlgorithm", v.checksum_algorithm.upper())
        _add(item, "ChecksumType", v.checksum_type)
    _add(item, "Size", v.size)
    if owner:
        _owner(item, owner)
    _add(item, "StorageClass", "STANDARD")


def list_objects_xml(
    bucket: Bucket,
    objects: list[Version],
    prefixes: list[str],
    truncated: bool,
    params: dict[str, str],
    v2: bool,
    next_marker: str,
    next_token: str,
) -> bytes:
    url = params.get("encoding-type") == "url"
    root = _doc("ListBucketResult")
    _add(root, "Name", bucket.name)
    _add(root, "Prefix", _enc(params.get("prefix", ""), url))
    if v2:
        if "start-after" in params:
            _add(root, "StartAfter", _enc(params["start-after"], url))
        if "continuation-token" in params:
            _add(root, "ContinuationToken", params["continuation-token"])
        if next_token:
            _add(root, "NextContinuationToken", next_token)
        _add(root, "KeyCount", len(objects) + len(prefixes))
    else:
        _add(root, "Marker", _enc(params.get("marker", ""), url))
        if truncated and params.get("delimiter"):
            _add(root, "NextMarker", _enc(next_marker, url))
    _add(root, "MaxKeys", params.get("max-keys", "1000"))
    if params.get("delimiter"):
        _add(root, "Delimiter", _enc(params["delimiter"], url))
    if url:
        _add(root, "EncodingType", "url")
    _add(root, "IsTruncated", "true" if truncated else "false")
    owner = bucket.project_id if (not v2 or params.get("fetch-owner") == "true") else None
    for v in objects:
        _contents(root, v, owner, url)
    for p in prefixes:
        _add(_add(root, "CommonPrefixes"), "Prefix", _enc(p, url))
    return render(root)


def list_versions_xml(
    bucket: Bucket, entries: list[Version | str], truncated: bool, params: dict[str, str]
) -> bytes:
    """Versions and delete markers, then the common prefixes (str entries)."""
    url = params.get("encoding-type") == "url"
    root = _doc("ListVersionsResult")
    _add(root, "Name", bucket.name)
    _add(root, "Prefix", _enc(params.get("prefix", ""), url))
    _add(root, "KeyMarker", _enc(params.get("key-marker", ""), url))
    _add(root, "VersionIdMarker", params.get("version-id-marker", ""))
    if truncated and entries:
        last = entries[-1]
        _add(root, "NextKeyMarker", _enc(last if isinstance(last, str) else last.key, url))
        if not isinstance(last, str):
            _add(root, "NextVersionIdMarker", last.version_id)
    _add(root, "MaxKeys", params.get("max-keys", "1000"))
    if params.get("delimiter"):
        _add(root, "Delimiter", _enc(params["delimiter"], url))
    if url:
        _add(root, "EncodingType", "url")
    _add(root, "IsTruncated", "true" if truncated else "false")
    for v in entries:
        if isinstance(v, str):
            continue
        item = _add(root, "DeleteMarker" if v.delete_marker else "Version")
        _add(item, "Key", _enc(v.key, url))
        _add(item, "VersionId", v.version_id)
        _add(item, "IsLatest", "true" if v.is_latest else "false")
        _add(item, "LastModified", iso(v.modified))
        if not v.delete_marker:
            _add(item, "ETag", f'"{v.etag}"')
            _add(item, "Size", v.size)
            _add(item, "StorageClass", "STANDARD")
        _owner(item, bucket.project_id)
    for p in entries:
        if isinstance(p, str):
            _add(_add(root, "CommonPrefixes"), "Prefix", _enc(p, url))
    return render(root)


def copy_result_xml(v: Version, root_tag: str = "CopyObjectResult") -> bytes:
    root = _doc(root_tag)
    _add(root, "LastModified", iso(v.modified))
    _add(root, "ETag", f'"{v.etag}"')
    if v.checksum and "-" not in v.checksum:
        _add(root, f"Checksum{v.checksum_algorithm.upper()}", v.checksum)
    return render(root)


def copy_part_xml(part: Part, algorithm: str) -> bytes:
    root = _doc("CopyPartResult")
    _add(root, "LastModified", iso(part.modified))
    _add(root, "ETag", f'"{part.etag}"')
    if part.checksum and algorithm:
        _add(root, f"Checksum{algorithm.upper()}", part.checksum)
    return render(root)


def initiate_xml(up: Upload) -> bytes:
    root = _doc("InitiateMultipartUploadResult")
    _add(root, "Bucket", up.bucket)
    _add(root, "Key", up.key)
    _add(root, "UploadId", up.upload_id)
    return render(root)


def complete_xml(location: str, v: Version) -> bytes:
    root = _doc("CompleteMultipartUploadResult")
    _add(root, "Location", location)
    _add(root, "Bucket", v.bucket)
    _add(root, "Key", v.key)
    _add(root, "ETag", f'"{v.etag}"')
    if v.checksum:
        _add(root, f"Checksum{v.checksum_algorithm.upper()}", v.checksum)
        _add(root, "ChecksumType", v.checksum_type)
    return render(root)


def list_parts_xml(
    up: Upload, project_id: str, parts: list[Part], truncated: bool, params: dict[str, str]
) -> bytes:
    root = _doc("ListPartsResult")
    _add(root, "Bucket", up.bucket)
    _add(root, "Key", up.key)
    _add(root, "UploadId", up.upload_id)
    _owner(root, project_id, "Initiator")
    _owner(root, project_id)
    _add(root, "StorageClass", "STANDARD")
    _add(root, "PartNumberMarker", params.get("part-number-marker", "0"))
    if parts:
        _add(root, "NextPartNumberMarker", parts[-1].part_number)
    _add(root, "MaxParts", params.get("max-parts", "1000"))
    _add(root, "IsTruncated", "true" if truncated else "false")
    if up.checksum_algorithm:
        _add(root, "ChecksumAlgorithm", up.checksum_algorithm.upper())
        _add(root, "ChecksumType", up.checksum_type)
    for p in parts:
        item = _add(root, "Part")
        _add(item, "PartNumber", p.part_number)
        _add(item, "LastModified", iso(p.modified))
        _add(item, "ETag", f'"{p.etag}"')
        _add(item, "Size", p.size)
        if p.checksum and up.checksum_algorithm:
            _add(item, f"Checksum{up.checksum_algorithm.upper()}", p.checksum)
    return render(root)


def list_uploads_xml(
    bucket: Bucket, uploads: list[Upload], truncated: bool, params: dict[str, str]
) -> bytes:
    root = _doc("ListMultipartUploadsResult")
    _add(root, "Bucket", bucket.name)
    _add(root, "KeyMarker", params.get("key-marker", ""))
    _add(root, "UploadIdMarker", params.get("upload-id-marker", ""))
    if truncated and uploads:
        _add(root, "NextKeyMarker", uploads[-1].key)
        _add(root, "NextUploadIdMarker", uploads[-1].upload_id)
    _add(root, "Prefix", params.get("prefix", ""))
    _add(root, "MaxUploads", params.get("max-uploads", "1000"))
    _add(root, "IsTruncated", "true" if truncated else "false")
    for up in uploads:
        item = _add(root, "Upload")
        _add(item, "Key", up.key)
        _add(item, "UploadId", up.upload_id)
        _owner(item, bucket.project_id, "Initiator")
        _owner(item, bucket.project_id)
        _add(item, "StorageClass", "STANDARD")
        _add(item, "Initiated", iso(up.initiated))
    return render(root)


def delete_result_xml(
    deleted: list[tuple[str, str, bool, str]], errors: list[tuple[str, str, str]], quiet: bool
) -> bytes:
    """deleted: (key, version id asked, delete marker?, marker version id); errors: (key, code, msg)."""
    root = _doc("DeleteResult")
    if not quiet:
        for key, version_id, marker, marker_id in deleted:
            item = _add(root, "Deleted")
            _add(item, "Key", key)
            if version_id:
                _add(item, "VersionId", version_id)
            if marker:
                _add(item, "DeleteMarker", "true")
                _add(item, "DeleteMarkerVersionId", marker_id)
    for key, code, message in errors:
        item = _add(root, "Error")
        _add(item, "Key", key)
        _add(item, "Code", code)
        _add(item, "Message", message)
    return render(root)


def versioning_xml(status: str) -> bytes:
    root = _doc("VersioningConfiguration")
    if status:
        _add(root, "Status", status)
    return render(root)


def tagging_xml(tags: dict[str, str]) -> bytes:
    root = _doc("Tagging")
    tagset = _add(root, "TagSet")
    for k, v in tags.items():
        tag = _add(tagset, "Tag")
        _add(tag, "Key", k)
        _add(tag, "Value", v)
    return render(root)


def acl_xml(project_id: str, acl: str) -> bytes:
    root = _doc("AccessControlPolicy")
    _owner(root, project_id)
    grants = _add(root, "AccessControlList")
    xsi = "http://www.w3.org/2001/XMLSchema-instance"

    def grant(kind: str, who: str, permission: str) -> None:
        g = _add(grants, "Grant")
        grantee = ET.SubElement(g, "Grantee", {"xmlns:xsi": xsi, "xsi:type": kind})
        if kind == "CanonicalUser":
            _add(grantee, "ID", who)
            _add(grantee, "DisplayName", who)
        else:
            _add(grantee, "URI", who)
        _add(g, "Permission", permission)

    grant("CanonicalUser", project_id, "FULL_CONTROL")
    all_users = "http://acs.amazonaws.com/groups/global/AllUsers"
    if acl in ("public-read", "public-read-write"):
        grant("Group", all_users, "READ")
    if acl == "public-read-write":
        grant("Group", all_users, "WRITE")
    if acl == "authenticated-read":
        grant("Group", "http://acs.amazonaws.com/groups/global/AuthenticatedUsers", "READ")
    return render(root)


# -- request bodies ------------------------------------------------------------------------------


def _parse(body: bytes) -> ET.Element:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise S3Error(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema.",
        ) from None
    for el in root.iter():  # drop namespaces: clients differ in sending them
        if "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def _text(el: ET.Element | None) -> str:
    return (el.text or "") if el is not None else ""


def parse_complete(body: bytes) -> list[tuple[int, str, str]]:
    root = _parse(body)
    parts = []
    for part in root.findall("Part"):
        try:
            number = int(_text(part.find("PartNumber")))
        except ValueError:
            raise S3Error("MalformedXML", "PartNumber must be an integer.") from None
        checksum = ""
        for child in part:
            if child.tag.startswith("Checksum") and child.tag != "ChecksumType":
                checksum = child.text or ""
        parts.append((number, _text(part.find("ETag")), checksum))
    return parts


def parse_delete(body: bytes) -> tuple[list[tuple[str, str | None]], bool]:
    root = _parse(body)
    objects = [
        (_text(o.find("Key")), _text(o.find("VersionId")) or None) for o in root.findall("Object")
    ]
    if len(objects) > 1000:
        raise S3Error("MalformedXML", "At most 1000 keys can be deleted at once.")
    return objects, _text(root.find("Quiet")).lower() == "true"


def parse_versioning(body: bytes) -> str:
    status = _text(_parse(body).find("Status"))
    if status not in ("Enabled", "Suspended"):
        raise S3Error("MalformedXML", "Versioning status must be Enabled or Suspended.")
    return status


def parse_tagging(body: bytes) -> dict[str, str]:
    root = _parse(body)
    tags = {}
    for tag in root.iter("Tag"):
        tags[_text(tag.find("Key"))] = _text(tag.find("Value"))
    if len(tags) > 50:
        raise S3Error("InvalidTag", "Object tags cannot be greater than 50")
    return tags


def parse_cors(body: bytes) -> list[dict[str, list[str] | int]]:
    root = _parse(body)
    rules: list[dict[str, list[str] | int]] = []
    for rule in root.findall("CORSRule"):
        item: dict[str, list[str] | int] = {}
        for name in ("AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader"):
            item[name] = [_text(e) for e in rule.findall(name)]
        if rule.find("MaxAgeSeconds") is not None:
            item["MaxAgeSeconds"] = int(_text(rule.find("MaxAgeSeconds")) or 0)
        rules.append(item)
    if not rules:
        raise S3Error("MalformedXML", "A CORS configuration needs at least one CORSRule.")
    return rules


def cors_xml(rules: list[dict[str, Any]]) -> bytes:
    root = _doc("CORSConfiguration")
    for rule in rules:
        el = _add(root, "CORSRule")
        for name in ("AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader"):
            for value in rule.get(name, []):
                _add(el, name, value)
        if "MaxAgeSeconds" in rule:
            _add(el, "MaxAgeSeconds", rule["MaxAgeSeconds"])
    return render(root)


def parse_tagging_header(value: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(value, keep_blank_values=True))

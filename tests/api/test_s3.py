"""S3 with boto3 (default settings and when_required) against a real nube serve."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.api.harness import Nube, openstack
from tests.api.s3_helpers import (
    Keys,
    admin_keys,
    bucket_name,
    client,
    code,
    keys_in,
    other_project_keys,
)

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def keys(nube: Nube) -> Keys:
    return admin_keys(nube)


@pytest.fixture(scope="module")
def s3(nube: Nube, keys: Keys) -> Any:
    return client(nube, keys)


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    name = bucket_name()
    s3.create_bucket(Bucket=name)
    yield name


# -- objects ---------------------------------------------------------------------------------------


def test_put_get_head_delete_keep_bytes_metadata_and_content_headers(s3: Any, bucket: str) -> None:
    put = s3.put_object(
        Bucket=bucket,
        Key="dir/hello.txt",
        Body=b"hello world",
        ContentType="text/plain",
        ContentDisposition="attachment",
        CacheControl="no-cache",
        Metadata={"color": "blue"},
    )
    got = s3.get_object(Bucket=bucket, Key="dir/hello.txt")
    assert got["Body"].read() == b"hello world"
    assert got["ETag"] == f'"{hashlib.md5(b"hello world").hexdigest()}"'
    assert got["ContentType"] == "text/plain" and got["ContentDisposition"] == "attachment"
    assert got["CacheControl"] == "no-cache" and got["Metadata"] == {"color": "blue"}
    assert s3.head_object(Bucket=bucket, Key="dir/hello.txt")["ContentLength"] == 11
    s3.delete_object(Bucket=bucket, Key="dir/hello.txt")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="dir/hello.txt")
    assert code(exc) == "NoSuchKey"
    # Request ids come back as S3 names them, so boto3 reports them.
    assert put["ResponseMetadata"]["RequestId"].startswith("req-")
    assert exc.value.response["ResponseMetadata"]["RequestId"].startswith("req-")
    assert "x-openstack-request-id" not in put["ResponseMetadata"]["HTTPHeaders"]


def test_default_boto3_checksum_is_verified_stored_and_returned(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"checksummed")
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"checksummed"
    assert (
        got["ChecksumCRC32"]
        == base64.b64encode(__import__("zlib").crc32(b"checksummed").to_bytes(4, "big")).decode()
    )


@pytest.mark.parametrize("algorithm", ["SHA1", "SHA256"])
def test_sha_checksums_round_trip(s3: Any, bucket: str, algorithm: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 1000, ChecksumAlgorithm=algorithm)
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"x" * 1000 and got[f"Checksum{algorithm}"]


@pytest.mark.parametrize(
    ("algorithm", "value"),
    # CRC-32C and CRC-64/NVME of b"123456789" are the catalogued check values e3069283 and
    # ae8b14860a799888 (botocore needs awscrt to compute these itself, so the test sends them).
    [("CRC32C", "4waSgw=="), ("CRC64NVME", "rosUhgp5mIg=")],
)
def test_crc32c_and_crc64nvme_are_verified_and_returned(
    s3: Any, bucket: str, algorithm: str, value: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"123456789", **{f"Checksum{algorithm}": value})
    assert (
        s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")[f"Checksum{algorithm}"]
        == value
    )
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"123456780", **{f"Checksum{algorithm}": value})
    assert code(exc) == "BadDigest"


def test_a_wrong_checksum_is_refused_and_leaves_nothing(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"data", ChecksumCRC32="AAAAAA==")
    assert code(exc) == "BadDigest"
    assert keys_in(s3, bucket) == []


def test_boto3_when_required_works(nube: Nube, keys: Keys, bucket: str) -> None:
    plain = client(
        nube,
        keys,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    plain.put_object(Bucket=bucket, Key="k", Body=b"abc")
    assert plain.get_object(Bucket=bucket, Key="k")["Body"].read() == b"abc"
    plain.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})
    assert keys_in(plain, bucket) == []


def test_bad_content_md5_is_refused_and_leaves_nothing(s3: Any, bucket: str) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"data", ContentMD5=wrong)
    assert code(exc) == "BadDigest"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"data", ContentMD5="short")
    assert code(exc) == "InvalidDigest"
    assert keys_in(s3, bucket) == []


def test_range_get_answers_206_and_416(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"0123456789")
    got = s3.get_object(Bucket=bucket, Key="k", Range="bytes=2-4")
    assert got["Body"].read() == b"234" and got["ContentRange"] == "bytes 2-4/10"
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=bucket, Key="k", Range="bytes=-3")["Body"].read() == b"789"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", Range="bytes=20-30")
    assert code(exc) == "InvalidRange"


def test_conditional_get_and_put(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", IfNoneMatch=etag)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", IfMatch='"nope"')
    assert code(exc) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", IfModifiedSince=time.time() + 3600)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfNoneMatch="*")
    assert code(exc) == "PreconditionFailed"
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"


def test_copy_keeps_or_replaces_metadata(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", Metadata={"a": "1"})
    s3.copy_object(Bucket=bucket, Key="same", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.head_object(Bucket=bucket, Key="same")["Metadata"] == {"a": "1"}
    s3.copy_object(
        Bucket=bucket,
        Key="new",
        CopySource=f"{bucket}/src",
        Metadata={"b": "2"},
        MetadataDirective="REPLACE",
    )
    got = s3.get_object(Bucket=bucket, Key="new")
    assert got["Body"].read() == b"copy me" and got["Metadata"] == {"b": "2"}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    assert code(exc) == "InvalidRequest"


def test_delete_objects_without_content_md5(s3: Any, bucket: str) -> None:
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}, {"Key": "missing"}]}
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == ["a", "b", "missing"]
    assert keys_in(s3, bucket) == ["c"]


def test_object_tagging(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1&b=2")
    assert {
        t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"]
    } == {
        "a": "1",
        "b": "2",
    }
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "c", "Value": "3"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [{"Key": "c", "Value": "3"}]


# -- listings --------------------------------------------------------------------------------------


def test_list_v2_prefix_delimiter_pagination_and_url_encoding(s3: Any, bucket: str) -> None:
    names = ["a/1", "a/2", "b/1", "c", "d e", "foo+1/x", "foo/x"]
    for key in names:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "b/", "foo+1/", "foo/"]
    assert [o["Key"] for o in top["Contents"]] == ["c", "d e"]
    seen, token = [], None
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=2, **kwargs)
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == sorted(names)
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="c", Prefix="")
    assert [o["Key"] for o in after["Contents"]] == ["d e", "foo+1/x", "foo/x"]
    encoded = s3.list_objects_v2(Bucket=bucket, Prefix="d", EncodingType="url")
    # Asked for explicitly, boto3 leaves the encoding to the caller.
    assert [o["Key"] for o in encoded["Contents"]] == ["d%20e"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="a/")["KeyCount"] == 2


def test_keys_with_url_special_characters_keep_their_exact_names(s3: Any, bucket: str) -> None:
    # boto3 sends these percent-encoded in the path; the key is the decoded text, never re-quoted.
    names = ["what?", "a#b", "100%", "sp ace", "plus+sign", "ü/é", "semi;colon=eq&amp", "%3F"]
    for key in names:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert keys_in(s3, bucket) == sorted(names, key=lambda k: k.encode())
    for key in names:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    s3.copy_object(Bucket=bucket, Key="copy?#", CopySource={"Bucket": bucket, "Key": "a#b"})
    assert s3.get_object(Bucket=bucket, Key="copy?#")["Body"].read() == b"a#b"
    s3.delete_object(Bucket=bucket, Key="what?")
    assert "what?" not in keys_in(s3, bucket)


def test_list_v1_marker_and_next_marker(s3: Any, bucket: str) -> None:
    for key in ("x/1", "x/2", "y", "z"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    page = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert page["IsTruncated"] and page["NextMarker"] == "y"
    rest = s3.list_objects(Bucket=bucket, Delimiter="/", Marker=page["NextMarker"])
    assert [o["Key"] for o in rest["Contents"]] == ["z"]
    paginator = s3.get_paginator("list_objects")
    assert [
        o["Key"]
        for p in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 1})
        for o in p.get("Contents", [])
    ] == ["x/1", "x/2", "y", "z"]


# -- multipart -------------------------------------------------------------------------------------


def test_multipart_upload_with_part_copy_and_checksums(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="source", Body=b"s" * (6 * MiB))
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32")
    uid = up["UploadId"]
    p1 = s3.upload_part(
        Bucket=bucket,
        Key="mp",
        UploadId=uid,
        PartNumber=1,
        Body=b"a" * (5 * MiB),
        ChecksumAlgorithm="CRC32",
    )
    p2 = s3.upload_part_copy(
        Bucket=bucket,
        Key="mp",
        UploadId=uid,
        PartNumber=2,
        CopySource=f"{bucket}/source",
        CopySourceRange="bytes=0-5242879",
    )["CopyPartResult"]
    p3 = s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=uid, PartNumber=3, Body=b"c", ChecksumAlgorithm="CRC32"
    )
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)["Parts"]
    assert [p["PartNumber"] for p in listed] == [1, 2, 3]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [uid]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=uid,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": p1["ETag"], "ChecksumCRC32": p1["ChecksumCRC32"]},
                {"PartNumber": 2, "ETag": p2["ETag"]},
                {"PartNumber": 3, "ETag": p3["ETag"], "ChecksumCRC32": p3["ChecksumCRC32"]},
            ]
        },
    )
    assert done["ETag"].endswith('-3"')
    body = s3.get_object(Bucket=bucket, Key="mp")["Body"].read()
    assert body == b"a" * (5 * MiB) + b"s" * (5 * MiB) + b"c"
    assert s3.get_object(Bucket=bucket, Key="mp", PartNumber=3)["Body"].read() == b"c"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_multipart_rejects_small_parts_and_abort_leaves_nothing(s3: Any, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"tiny")["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2, Body=b"tiny")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
        )  # fmt: skip
    assert code(exc) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)
    assert code(exc) == "NoSuchUpload"
    assert keys_in(s3, bucket) == []


def test_upload_file_and_download_file_with_s3transfer(s3: Any, bucket: str, tmp_path: Any) -> None:
    data = bytes(range(256)) * (48 * 1024)  # 12 MiB: multipart in 5 MiB parts
    src = tmp_path / "src"
    src.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_file(str(src), bucket, "big", Config=config)
    out = io.BytesIO()
    s3.download_fileobj(bucket, "big", out, Config=config)
    assert out.getvalue() == data


# -- buckets ---------------------------------------------------------------------------------------


def test_bucket_create_head_list_location_delete(s3: Any) -> None:
    name = bucket_name()
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] in (None, "RegionOne")
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert code(exc) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert code(exc) == "BucketNotEmpty"
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert exc.value.response["Error"]["Code"] == "404"


def test_any_region_in_the_credential_scope_is_accepted(
    nube: Nube, keys: Keys, bucket: str
) -> None:
    other = client(nube, keys, region_name="US", signature_version="s3v4")
    other.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert other.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_versioning_versions_and_delete_markers(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2
    marker = s3.delete_object(Bucket=bucket, Key="k")
    assert marker["DeleteMarker"] is True
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="k")
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"one"
    listed = s3.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in listed["Versions"]] == [v2, v1]
    assert listed["DeleteMarkers"][0]["IsLatest"] is True
    s3.delete_object(Bucket=bucket, Key="k", VersionId=marker["VersionId"])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"three").get("VersionId") in (None, "null")


def test_bucket_cors_and_tagging_round_trip(s3: Any, bucket: str, nube: Nube) -> None:
    rules = [
        {"AllowedOrigins": ["https://example.org"], "AllowedMethods": ["GET"], "MaxAgeSeconds": 60}
    ]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"][0]["AllowedOrigins"] == [
        "https://example.org"
    ]
    pre = requests.options(
        f"http://127.0.0.1:{nube.s3_port}/{bucket}/k",
        headers={"Origin": "https://example.org", "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    assert (
        pre.status_code == 200
        and pre.headers["Access-Control-Allow-Origin"] == "https://example.org"
    )
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "a"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "a"}]


# -- access ----------------------------------------------------------------------------------------


def test_another_projects_keys_get_403_on_every_bucket_operation(
    nube: Nube, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret")
    intruder = client(nube, other_project_keys(nube))
    attempts = [
        lambda: intruder.get_object(Bucket=bucket, Key="k"),
        lambda: intruder.head_bucket(Bucket=bucket),
        lambda: intruder.list_objects_v2(Bucket=bucket),
        lambda: intruder.put_object(Bucket=bucket, Key="k2", Body=b"x"),
        lambda: intruder.delete_object(Bucket=bucket, Key="k"),
        lambda: intruder.delete_bucket(Bucket=bucket),
        lambda: intruder.create_multipart_upload(Bucket=bucket, Key="m"),
        lambda: intruder.copy_object(Bucket=bucket, Key="c", CopySource=f"{bucket}/k"),
        lambda: intruder.get_bucket_versioning(Bucket=bucket),
        lambda: intruder.put_bucket_policy(Bucket=bucket, Policy="{}"),
    ]
    for attempt in attempts:
        with pytest.raises(ClientError) as exc:
            attempt()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert bucket not in [b["Name"] for b in intruder.list_buckets()["Buckets"]]
    assert keys_in(s3, bucket) == ["k"]


def test_anonymous_access_only_where_acl_or_policy_allows(nube: Nube, s3: Any, bucket: str) -> None:
    base = f"http://127.0.0.1:{nube.s3_port}"
    s3.put_object(Bucket=bucket, Key="k", Body=b"public?")
    assert requests.get(f"{base}/{bucket}/k", timeout=10).status_code == 403
    assert "<Code>AccessDenied</Code>" in requests.get(f"{base}/", timeout=10).text
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert requests.get(f"{base}/{bucket}/k", timeout=10).content == b"public?"
    assert requests.put(f"{base}/{bucket}/x", data=b"no", timeout=10).status_code == 403
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
        f'"Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}'
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    assert requests.get(f"{base}/{bucket}/k", timeout=10).status_code == 200
    assert requests.get(f"{base}/{bucket}", timeout=10).status_code == 403
    s3.delete_bucket_policy(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="one", Body=b"just me")
    assert requests.get(f"{base}/{bucket}/one", timeout=10).status_code == 403
    s3.put_object_acl(Bucket=bucket, Key="one", ACL="public-read")
    assert requests.get(f"{base}/{bucket}/one", timeout=10).content == b"just me"
    assert requests.get(f"{base}/{bucket}/k", timeout=10).status_code == 403
    with pytest.raises(ClientError) as exc:
        s3.put_object_acl(
            Bucket=bucket, Key="one", AccessControlPolicy={"Grants": [], "Owner": {"ID": "x"}}
        )
    assert code(exc) == "NotImplemented"


def test_presigned_urls_sigv2_and_sigv4_work_with_plain_http(
    nube: Nube, keys: Keys, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="p k", Body=b"presigned")
    v2 = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p k"})
    assert "AWSAccessKeyId=" in v2 and requests.get(v2, timeout=10).content == b"presigned"
    s3v4 = client(nube, keys, signature_version="s3v4")
    v4 = s3v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p k"})
    assert "X-Amz-Signature=" in v4 and requests.get(v4, timeout=10).content == b"presigned"
    put = s3v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up"})
    assert requests.put(put, data=b"via presign", timeout=10).status_code == 200
    assert s3.get_object(Bucket=bucket, Key="up")["Body"].read() == b"via presign"


def test_expired_and_tampered_presigned_urls_are_refused(
    nube: Nube, keys: Keys, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3v4 = client(nube, keys, signature_version="s3v4")
    expired = s3v4.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1
    )
    v2 = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    time.sleep(2.1)
    for url in (expired, v2):
        r = requests.get(url, timeout=10)
        assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text
    fresh = s3v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    r = requests.get(fresh.replace("/k?", "/other?"), timeout=10)
    assert r.status_code == 403 and "SignatureDoesNotMatch" in r.text


def test_wrong_secret_is_refused_and_leaves_nothing(
    nube: Nube, keys: Keys, s3: Any, bucket: str
) -> None:
    bad = client(nube, Keys(keys.access, "not-the-secret", keys.project_id))
    with pytest.raises(ClientError) as exc:
        bad.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert code(exc) == "SignatureDoesNotMatch"
    unknown = client(nube, Keys("AKNOPE", "x", ""))
    with pytest.raises(ClientError) as exc:
        unknown.list_buckets()
    assert code(exc) == "InvalidAccessKeyId"
    assert keys_in(s3, bucket) == []


def test_revoked_keys_stop_working_on_the_next_request(nube: Nube) -> None:
    """Removing the role, disabling the user or the project, or deleting the EC2 credential
    (all with the `openstack` CLI) refuses the very next S3 request; undoing it lets it in again."""
    admin, name = nube.env(), f"rv-{uuid.uuid4().hex[:8]}"
    openstack(admin, "project", "create", name, "-f", "json")
    openstack(admin, "user", "create", name, "--password", "pw-" + name, "-f", "json")
    openstack(admin, "role", "add", "--project", name, "--user", name, "member")
    cred = openstack(
        nube.env(name, "pw-" + name, name), "ec2", "credentials", "create", "-f", "json"
    )
    own = client(nube, Keys(cred["access"], cred["secret"], cred["project_id"]))
    bucket = bucket_name()
    own.create_bucket(Bucket=bucket)
    own.put_object(Bucket=bucket, Key="k", Body=b"kept")

    def refused(expected: str) -> None:
        for attempt in (
            lambda: own.get_object(Bucket=bucket, Key="k"),
            lambda: own.put_object(Bucket=bucket, Key="new", Body=b"x" * 4096),
            own.list_buckets,
        ):
            with pytest.raises(ClientError) as exc:
                attempt()
            assert code(exc) == expected
            assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    for revoke, restore in (
        (("role", "remove", "--project", name, "--user", name, "member"),
         ("role", "add", "--project", name, "--user", name, "member")),
        (("user", "set", "--disable", name), ("user", "set", "--enable", name)),
        (("project", "set", "--disable", name), ("project", "set", "--enable", name)),
    ):  # fmt: skip
        openstack(admin, *revoke)
        refused("AccessDenied")
        openstack(admin, *restore)
        assert own.get_object(Bucket=bucket, Key="k")["Body"].read() == b"kept"
    openstack(admin, "ec2", "credentials", "delete", "--user", name, cred["access"])
    refused("InvalidAccessKeyId")
    fresh = openstack(
        nube.env(name, "pw-" + name, name), "ec2", "credentials", "create", "-f", "json"
    )
    again = client(nube, Keys(fresh["access"], fresh["secret"], fresh["project_id"]))
    assert [o["Key"] for o in again.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


def test_unknown_sub_resources_answer_not_implemented(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code(exc) == "NotImplemented"


# -- raw wire --------------------------------------------------------------------------------------


def _signed(
    nube: Nube, keys: Keys, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> AWSRequest:
    request = AWSRequest(
        method=method, url=f"http://127.0.0.1:{nube.s3_port}{path}", data=body, headers=headers
    )
    # Plain SigV4Auth signs the X-Amz-Content-SHA256 header we set (S3SigV4Auth would replace it).
    SigV4Auth(Credentials(keys.access, keys.secret), "s3", "us-east-1").add_auth(request)
    return request


def test_unsigned_payload_trailer_aws_chunked_body_is_decoded_and_checksum_verified(
    nube: Nube, keys: Keys, s3: Any, bucket: str
) -> None:
    data = b"hello aws-chunked world"
    crc = base64.b64encode(__import__("zlib").crc32(data).to_bytes(4, "big")).decode()
    body = (
        f"{len(data):x}\r\n".encode()
        + data
        + f"\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    )
    headers = {
        "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Content-Encoding": "aws-chunked,gzip",
        "X-Amz-Trailer": "x-amz-checksum-crc32",
        "X-Amz-Decoded-Content-Length": str(len(data)),
    }
    req = _signed(nube, keys, "PUT", f"/{bucket}/chunked", headers, body)
    r = requests.put(req.url, data=body, headers=dict(req.headers), timeout=10)
    assert r.status_code == 200, r.text
    got = s3.get_object(Bucket=bucket, Key="chunked", ChecksumMode="ENABLED")
    assert got["Body"].read() == data and got["ChecksumCRC32"] == crc
    assert got["ContentEncoding"] == "gzip"
    bad = body.replace(crc.encode(), b"AAAAAA==")
    req = _signed(nube, keys, "PUT", f"/{bucket}/bad", headers, bad)
    r = requests.put(req.url, data=bad, headers=dict(req.headers), timeout=10)
    assert r.status_code == 400 and "BadDigest" in r.text
    assert "bad" not in keys_in(s3, bucket)


def test_http_chunked_transfer_encoding_body(nube: Nube, keys: Keys, s3: Any, bucket: str) -> None:
    headers = {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    req = _signed(nube, keys, "PUT", f"/{bucket}/te", headers)
    sent = dict(req.headers)
    sent.pop("Content-Length", None)
    r = requests.put(req.url, data=iter([b"part one, ", b"part two"]), headers=sent, timeout=10)
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=bucket, Key="te")["Body"].read() == b"part one, part two"


def test_chunked_body_in_uneven_pieces_and_pauses_arrives_whole(
    nube: Nube, keys: Keys, s3: Any, bucket: str
) -> None:
    """The server hands bodies to the store in batches of up to 1 MiB (appliance/http_protocol.py):
    pieces below, across and above a batch, with pauses between them, all arrive in order."""
    sizes = [1, 70_000, (1 << 20) + 3, 5, 300_000, 2 << 20, 7]
    pieces = [os.urandom(n) for n in sizes]

    def trickle(parts: list[bytes]) -> Iterator[bytes]:
        for part in parts:
            time.sleep(0.05)
            yield part

    headers = {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    for key, body in (("uneven", pieces), ("small", [b"a", b"b" * 10, b"c" * 1000])):
        req = _signed(nube, keys, "PUT", f"/{bucket}/{key}", headers)
        sent = dict(req.headers)
        sent.pop("Content-Length", None)
        r = requests.put(req.url, data=trickle(body), headers=sent, timeout=30)
        assert r.status_code == 200, r.text
        data = b"".join(body)
        assert r.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data


@pytest.mark.parametrize("sent", [100, (1 << 20) + 500_000])
def test_truncated_body_leaves_nothing(
    nube: Nube, keys: Keys, s3: Any, bucket: str, sent: int
) -> None:
    req = _signed(
        nube,
        keys,
        "PUT",
        f"/{bucket}/short",
        {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD", "Content-Length": str(sent * 2)},
    )
    head = (
        f"PUT /{bucket}/short HTTP/1.1\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
        + "\r\n"
    )
    with socket.create_connection(("127.0.0.1", nube.s3_port), timeout=10) as sock:
        sock.sendall(head.encode() + b"x" * sent)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1000)
    time.sleep(0.5)
    assert "short" not in keys_in(s3, bucket)


def test_expect_100_continue_refused_before_the_body(nube: Nube, bucket: str) -> None:
    head = (
        f"PUT /{bucket}/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", nube.s3_port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 403") and "100 Continue" not in answer


def test_an_empty_body_is_answered_without_100_continue(
    nube: Nube, keys: Keys, s3: Any, bucket: str
) -> None:
    """Expect: 100-continue on a request whose framing shows no body gets the final answer
    straight away; one with a body still gets 100 Continue first, and only then its answer."""
    empty = hashlib.sha256(b"").hexdigest()
    for key, length, first in (("empty", 0, "HTTP/1.1 200"), ("full", 5, "HTTP/1.1 100 Continue")):
        headers = {"X-Amz-Content-SHA256": empty if not length else "UNSIGNED-PAYLOAD",
                   "Content-Length": str(length), "Expect": "100-continue"}  # fmt: skip
        req = _signed(nube, keys, "PUT", f"/{bucket}/{key}", headers)
        head = f"PUT /{bucket}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{nube.s3_port}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in req.headers.items()
        )
        with socket.create_connection(("127.0.0.1", nube.s3_port), timeout=10) as sock:
            sock.sendall((head + "\r\n").encode())
            answer = sock.recv(4096).decode()
            assert answer.startswith(first), answer
            if length:
                sock.sendall(b"x" * length)
                answer = sock.recv(4096).decode()
                assert answer.startswith("HTTP/1.1 200"), answer
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""
    assert s3.get_object(Bucket=bucket, Key="full")["Body"].read() == b"xxxxx"


def test_other_clients_boto3_resource_api(nube: Nube, keys: Keys, bucket: str) -> None:
    resource = boto3.resource(
        "s3", endpoint_url=f"http://127.0.0.1:{nube.s3_port}",
        aws_access_key_id=keys.access, aws_secret_access_key=keys.secret, region_name="us-east-1",
    )  # fmt: skip
    resource.Object(bucket, "r").put(Body=b"resource")
    assert [o.key for o in resource.Bucket(bucket).objects.all()] == ["r"]


def test_list_object_versions_rolls_keys_up_by_delimiter(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in ("dir/a", "dir/a", "dir/b", "top"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    got = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in got["CommonPrefixes"]] == ["dir/"]
    assert [v["Key"] for v in got["Versions"]] == ["top"]
    inside = s3.list_object_versions(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert [v["Key"] for v in inside["Versions"]] == ["dir/a", "dir/a", "dir/b"]
    assert "CommonPrefixes" not in inside

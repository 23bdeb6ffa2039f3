"""A multipart upload whose requests are signed before the clock starts: the server's view of a client
on another machine.

boto3 on the benchmark's own two cores hashes every byte itself (SHA-256 to sign the payload over
http, CRC32 for the checksum header) and so takes CPU the server would have on a real network. Here
each UploadPart request is built and signed by botocore exactly as boto3 would send it (SigV4 with the
payload's SHA-256, `x-amz-checksum-crc32`, Content-Length) ahead of time; the timed part only sends
the bytes over keep-alive connections (http.client) and reads the answers. The server still receives,
verifies (SHA-256, CRC32), hashes (MD5 for the ETag), writes and fsyncs every byte as before.
Create (its upload id is part of what is signed) goes first through the normal boto3 client,
untimed; Complete, through the same client, is inside the timed window.
"""

from __future__ import annotations

import base64
import http.client
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


@dataclass(frozen=True)
class SignedPart:
    number: int
    target: str  # path and query
    headers: dict[str, str]
    body: memoryview
    crc32: str  # base64, as the header and the Complete request carry it


def sign_parts(
    endpoint: str, access: str, secret: str, bucket: str, key: str, upload_id: str,
    data: bytes, part_size: int,
) -> list[SignedPart]:  # fmt: skip
    creds = Credentials(access, secret)
    view = memoryview(data)
    parts = []
    for number, start in enumerate(range(0, len(data), part_size), 1):
        body = view[start : start + part_size]
        crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        url = f"{endpoint}/{bucket}/{key}?partNumber={number}&uploadId={upload_id}"
        request = AWSRequest("PUT", url, data=bytes(body),
                             headers={"x-amz-checksum-crc32": crc, "Content-Length": str(len(body))})  # fmt: skip
        S3SigV4Auth(creds, "s3", "us-east-1").add_auth(request)
        prepared = request.prepare()
        split = urlsplit(prepared.url)
        target = f"{split.path}?{split.query}"
        parts.append(SignedPart(number, target, dict(prepared.headers), body, crc))
    return parts


def send_parts(endpoint: str, parts: list[SignedPart], threads: int) -> list[dict[str, Any]]:
    """Send every part (`threads` at a time, one keep-alive connection per thread); the parts as
    CompleteMultipartUpload lists them."""
    split = urlsplit(endpoint)
    local = threading.local()

    def send(part: SignedPart) -> dict[str, Any]:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(split.hostname, split.port, timeout=120)
        local.conn.request("PUT", part.target, body=part.body, headers=part.headers)
        answer = local.conn.getresponse()
        text = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"part {part.number}: HTTP {answer.status} {text[:300]!r}")
        etag = answer.getheader("ETag") or ""
        return {"PartNumber": part.number, "ETag": etag, "ChecksumCRC32": part.crc32}

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(send, parts))


def presigned_upload(
    s3: Any, endpoint: str, access: str, secret: str, bucket: str, key: str, data: bytes,
    part_size: int, threads: int, timed: Callable[[], Any],
) -> None:  # fmt: skip
    """Upload `data` as `key` in parts signed in advance; `timed()` is the context manager that
    measures, entered once the parts are signed."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32")[
        "UploadId"
    ]
    parts = sign_parts(endpoint, access, secret, bucket, key, upload_id, data, part_size)
    with timed():
        sent = send_parts(endpoint, parts, threads)
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": sent}
        )

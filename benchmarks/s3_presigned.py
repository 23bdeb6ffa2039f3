"""Requests made and signed by boto3 before the clock starts, then sent: the server's view of a client on
another machine.

boto3 on the benchmark's own two cores spends CPU the server would have on a real network: for every
PUT it hashes the body (SHA-256 to sign the payload over http, CRC32 for the checksum header), builds
and signs the request and parses the answer. Here the boto3 client itself makes each request, with all
its handlers (checksums, Expect, SigV4), and a `before-send` hook keeps the prepared request instead of
sending it; the timed part only sends those exact bytes over keep-alive connections (http.client) and
reads the answers. The server still authenticates, receives, verifies (SHA-256, CRC32), hashes (MD5
for the ETag), writes and fsyncs every byte as before. Signatures stay valid for the server's
clock-skew window (15 minutes), far longer than a phase.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSResponse


@dataclass(frozen=True)
class Prepared:
    method: str
    target: str  # path and query
    headers: dict[str, str]
    body: bytes


class _Empty:
    def stream(self) -> Iterator[bytes]:
        yield b""


@contextmanager
def capturing(s3: Any) -> Iterator[list[Prepared]]:
    """While inside, the client's calls are prepared and signed but not sent (each gets an empty
    200 answer); the list fills with what would have been sent."""
    kept: list[Prepared] = []

    def keep(request: Any, **_: Any) -> AWSResponse:
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        split = urlsplit(request.url)
        target = split.path + (f"?{split.query}" if split.query else "")
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        kept.append(Prepared(request.method, target, headers, bytes(body or b"")))
        return AWSResponse(request.url, 200, {}, _Empty())

    s3.meta.events.register_first("before-send.s3", keep)
    try:
        yield kept
    finally:
        s3.meta.events.unregister("before-send.s3", keep)


def send_all(
    endpoint: str, requests: list[Prepared], threads: int, latencies: list[float] | None = None
) -> list[http.client.HTTPResponse]:
    """Send every request (`threads` at a time, one keep-alive connection per thread); the answers,
    in order, bodies read. Any answer but 200 fails the run."""
    split = urlsplit(endpoint)
    local = threading.local()

    def send(p: Prepared) -> http.client.HTTPResponse:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(split.hostname, split.port, timeout=120)
        start = time.monotonic()
        local.conn.request(p.method, p.target, body=p.body, headers=p.headers)
        answer = local.conn.getresponse()  # skips a 100 Continue
        text = answer.read()
        if latencies is not None:
            latencies.append(time.monotonic() - start)
        if answer.status != 200:
            raise RuntimeError(f"{p.method} {p.target}: HTTP {answer.status} {text[:300]!r}")
        return answer

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(send, requests))


def upload(
    s3: Any, endpoint: str, bucket: str, key: str, data: bytes, part_size: int, threads: int,
    timed: Callable[[], AbstractContextManager[Any]],
) -> None:  # fmt: skip
    """Upload `data` as `key` in parts boto3 signed in advance, as its upload_file would (CRC32
    checksums); `timed()` measures the parts and the completion. Create goes first, untimed: its
    upload id is in what is signed."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32")[
        "UploadId"
    ]
    numbers = range(1, (len(data) + part_size - 1) // part_size + 1)
    with capturing(s3) as parts:
        for n in numbers:
            body = data[(n - 1) * part_size : n * part_size]
            s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=body,
                           ChecksumAlgorithm="CRC32")  # fmt: skip
    with timed():
        answers = send_all(endpoint, parts, threads)
        done = [
            {"PartNumber": n, "ETag": a.getheader("ETag"),
             "ChecksumCRC32": p.headers.get("x-amz-checksum-crc32")}
            for n, a, p in zip(numbers, answers, parts, strict=True)
        ]  # fmt: skip
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
        )

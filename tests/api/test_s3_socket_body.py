"""Large S3 bodies read straight off the socket (appliance.http_protocol's SocketBody), seen from
the wire of a real nube serve: the connection goes on as if the parser had read them."""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.api.harness import Nube
from tests.api.s3_helpers import Keys, admin_keys, bucket_name, client, code, other_project_keys

MiB = 1 << 20


@pytest.fixture(scope="module")
def keys(nube: Nube) -> Keys:
    return admin_keys(nube)


@pytest.fixture(scope="module")
def bucket(nube: Nube, keys: Keys) -> str:
    name = bucket_name()
    client(nube, keys).create_bucket(Bucket=name)
    return name


def request(
    nube: Nube, keys: Keys, method: str, path: str, body: bytes = b"", **headers: str
) -> bytes:
    """One SigV4-signed HTTP/1.1 request, as bytes for a raw socket."""
    host = f"127.0.0.1:{nube.s3_port}"
    headers = {"Host": host, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD", **headers}
    if body or method == "PUT":
        headers["Content-Length"] = str(len(body))
    signed = AWSRequest(method=method, url=f"http://{host}{path}", data=body, headers=headers)
    SigV4Auth(Credentials(keys.access, keys.secret), "s3", "us-east-1").add_auth(signed)
    lines = "".join(f"{k}: {v}\r\n" for k, v in signed.headers.items())
    return f"{method} {path} HTTP/1.1\r\n{lines}\r\n".encode() + body


def responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """`count` responses read in order from one buffered reader (pipelined answers)."""
    reader = sock.makefile("rb")
    out = []
    for _ in range(count):
        status = int(reader.readline().split()[1])
        headers = {}
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        out.append((status, headers, reader.read(int(headers.get("content-length", "0")))))
    return out


def test_a_large_put_and_pipelined_requests_after_it_on_one_connection(
    nube: Nube, keys: Keys, bucket: str
) -> None:
    data = os.urandom(3 * MiB + 5)
    with socket.create_connection(("127.0.0.1", nube.s3_port), timeout=30) as sock:
        sock.sendall(
            request(nube, keys, "PUT", f"/{bucket}/big", data)
            + request(nube, keys, "GET", f"/{bucket}/big")
            + request(nube, keys, "HEAD", f"/{bucket}/big")
        )
        (put, put_headers, _), (get, _, got), (head, head_headers, _) = responses(sock, 3)
    assert (put, get, head) == (200, 200, 200)
    assert put_headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert got == data and head_headers["etag"] == put_headers["etag"]
    other = client(nube, other_project_keys(nube))
    with pytest.raises(ClientError) as exc:
        other.get_object(Bucket=bucket, Key="big")
    assert code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        other.put_object(Bucket=bucket, Key="big", Body=os.urandom(2 * MiB))
    assert code(exc) == "AccessDenied"
    assert client(nube, keys).get_object(Bucket=bucket, Key="big")["Body"].read() == data


def test_a_large_put_with_a_wrong_sha256_is_refused_whole_and_the_connection_goes_on(
    nube: Nube, keys: Keys, bucket: str
) -> None:
    data = os.urandom(2 * MiB + 1)
    wrong = hashlib.sha256(data + b"!").hexdigest()
    with socket.create_connection(("127.0.0.1", nube.s3_port), timeout=30) as sock:
        sock.sendall(
            request(nube, keys, "PUT", f"/{bucket}/bad", data, **{"X-Amz-Content-SHA256": wrong})
        )
        [(status, _, body)] = responses(sock, 1)
        assert status == 400 and b"<Code>XAmzContentSHA256Mismatch</Code>" in body
        sock.sendall(request(nube, keys, "GET", f"/{bucket}/bad"))
        [(status, _, body)] = responses(sock, 1)
    assert status == 404 and b"<Code>NoSuchKey</Code>" in body


def test_a_large_put_sent_with_expect_100_continue_by_boto3_defaults(
    nube: Nube, keys: Keys, bucket: str
) -> None:
    data = os.urandom(5 * MiB + 3)  # boto3 asks for 100-continue above 1 MiB
    s3: Any = client(nube, keys)
    seen: list[str] = []
    s3.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: seen.append(request.headers["Expect"])
    )
    put = s3.put_object(Bucket=bucket, Key="boto", Body=data)
    assert seen == [b"100-continue"]
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert s3.get_object(Bucket=bucket, Key="boto")["Body"].read() == data

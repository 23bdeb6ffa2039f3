"""S3 request signatures against the examples AWS publishes (values as printed in its docs):

SigV4 header auth and presigned query (sig-v4-header-based-auth.html, sigv4-query-string-auth.html),
the aws-chunked 66,560-byte example with its seed and chunk signatures (sigv4-streaming.html), and
SigV2 (RestAuthentication.html, the "johnsmith" examples). botocore's signer is the oracle for the
trailer framing, which AWS documents without a full worked example."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from appliance.objects import sigv4
from appliance.objects.errors import S3Error

ACCESS = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
STAMP = "20130524T000000Z"
WHEN = datetime(2013, 5, 24, tzinfo=UTC).timestamp()
EMPTY = hashlib.sha256(b"").hexdigest()
HOST = "examplebucket.s3.amazonaws.com"
SCOPE = f"{ACCESS}/20130524/us-east-1/s3/aws4_request"


def v4_header(signed: str, signature: str) -> str:
    return f"AWS4-HMAC-SHA256 Credential={SCOPE},SignedHeaders={signed},Signature={signature}"


def verifies(method: str, path: str, query: str, headers: dict[str, str], now: float) -> bool:
    signed = sigv4.parse(method, path, query, headers, now=now)
    assert signed is not None and signed.access == ACCESS
    return signed.verify(SECRET)


def test_sigv4_get_object_example_with_a_range_header_verifies() -> None:
    sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    headers = {
        "host": HOST,
        "range": "bytes=0-9",
        "x-amz-content-sha256": EMPTY,
        "x-amz-date": STAMP,
        "authorization": v4_header("host;range;x-amz-content-sha256;x-amz-date", sig),
    }
    assert verifies("GET", "/test.txt", "", headers, WHEN)


def test_sigv4_put_object_example_verifies_with_the_dollar_sent_raw_or_encoded() -> None:
    sig = "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    payload = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
    headers = {
        "date": "Fri, 24 May 2013 00:00:00 GMT",
        "host": HOST,
        "x-amz-date": STAMP,
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": payload,
        "authorization": v4_header(
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class", sig
        ),
    }
    assert verifies("PUT", "/test%24file.text", "", headers, WHEN)
    assert verifies("PUT", "/test$file.text", "", headers, WHEN)


@pytest.mark.parametrize(
    ("query", "sig"),
    [
        ("lifecycle", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        ("max-keys=2&prefix=J", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
        ("prefix=J&max-keys=2", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ],
)
def test_sigv4_bucket_examples_sort_and_encode_the_query(query: str, sig: str) -> None:
    headers = {
        "host": HOST,
        "x-amz-content-sha256": EMPTY,
        "x-amz-date": STAMP,
        "authorization": v4_header("host;x-amz-content-sha256;x-amz-date", sig),
    }
    assert verifies("GET", "/", query, headers, WHEN)


def test_sigv4_presigned_url_example_verifies_and_then_expires() -> None:
    query = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={SCOPE.replace('/', '%2F')}"
        f"&X-Amz-Date={STAMP}&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    assert verifies("GET", "/test.txt", query, {"host": HOST}, WHEN + 3600)
    with pytest.raises(S3Error) as exc:
        sigv4.parse("GET", "/test.txt", query, {"host": HOST}, now=WHEN + 86401)
    assert exc.value.code == "AccessDenied"


def test_a_wrong_secret_or_a_changed_header_does_not_verify() -> None:
    sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    headers = {
        "host": HOST,
        "range": "bytes=0-10",
        "x-amz-content-sha256": EMPTY,
        "x-amz-date": STAMP,
        "authorization": v4_header("host;range;x-amz-content-sha256;x-amz-date", sig),
    }
    assert not verifies("GET", "/test.txt", "", headers, WHEN)
    headers["range"] = "bytes=0-9"
    signed = sigv4.parse("GET", "/test.txt", "", headers, now=WHEN)
    assert signed is not None and not signed.verify(SECRET[:-1] + "X")


def test_a_request_signed_twenty_minutes_ago_is_too_skewed() -> None:
    headers = {
        "host": HOST,
        "x-amz-content-sha256": EMPTY,
        "x-amz-date": STAMP,
        "authorization": v4_header("host;x-amz-content-sha256;x-amz-date", "0" * 64),
    }
    with pytest.raises(S3Error) as exc:
        sigv4.parse("GET", "/", "", headers, now=WHEN + 20 * 60)
    assert exc.value.code == "RequestTimeTooSkewed"


# -- aws-chunked -------------------------------------------------------------------------------

SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_SIGS = (
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
)
STREAMING_HEADERS = {
    "host": "s3.amazonaws.com",
    "x-amz-date": STAMP,
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "x-amz-content-sha256": sigv4.STREAMING_SIGNED,
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
    "content-length": "66824",
    "authorization": v4_header(
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class",
        SEED,
    ),
}


def example_body(sigs: tuple[str, ...] = CHUNK_SIGS) -> bytes:
    return (
        f"10000;chunk-signature={sigs[0]}\r\n".encode()
        + b"a" * 65536
        + f"\r\n400;chunk-signature={sigs[1]}\r\n".encode()
        + b"a" * 1024
        + f"\r\n0;chunk-signature={sigs[2]}\r\n\r\n".encode()
    )


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def decode(body: bytes, signed: sigv4.Signed | None, split: int = 7000) -> bytes:
    async def run() -> bytes:
        out = bytearray()
        trailer = sigv4.Trailer({})
        async for piece in sigv4.aws_chunked(pieces(body, split), trailer, signed, SECRET):
            out += piece
        return bytes(out)

    return asyncio.run(run())


def example_request() -> sigv4.Signed:
    signed = sigv4.parse("PUT", "/examplebucket/chunkObject.txt", "", STREAMING_HEADERS, WHEN)
    assert signed is not None
    return signed


def test_aws_chunked_example_seed_signature_verifies() -> None:
    assert example_request().verify(SECRET)


@pytest.mark.parametrize("split", [1, 13, 8192, 70000])
def test_aws_chunked_example_decodes_to_66560_a_whatever_the_network_split(split: int) -> None:
    assert decode(example_body(), example_request(), split) == b"a" * 66560


def test_aws_chunked_example_with_one_wrong_chunk_signature_is_rejected() -> None:
    bad = (CHUNK_SIGS[0], CHUNK_SIGS[1][:-1] + "0", CHUNK_SIGS[2])
    with pytest.raises(S3Error) as exc:
        decode(example_body(bad), example_request())
    assert exc.value.code == "SignatureDoesNotMatch"


def test_aws_chunked_chunks_swapped_in_order_are_rejected() -> None:
    body = example_body().replace(b"a" * 1024, b"b" * 1024)
    with pytest.raises(S3Error):
        decode(body, example_request())


def test_a_truncated_aws_chunked_body_is_incomplete() -> None:
    with pytest.raises(S3Error) as exc:
        decode(example_body()[:40000], example_request())
    assert exc.value.code == "IncompleteBody"


def test_signed_trailer_verifies_against_the_chained_signature() -> None:
    """No AWS worked example exists for trailers; compute one as the docs define it."""
    signed = example_request()
    key = sigv4.signing_key(SECRET, "20130524", "us-east-1")
    scope = "20130524/us-east-1/s3/aws4_request"

    def sign(kind: str, previous: str, digest: str, empty: bool = True) -> str:
        lines = [kind, STAMP, scope, previous] + ([EMPTY] if empty else []) + [digest]
        return hmac.new(key, "\n".join(lines).encode(), hashlib.sha256).hexdigest()

    data = b"hello trailer"
    s1 = sign("AWS4-HMAC-SHA256-PAYLOAD", SEED, hashlib.sha256(data).hexdigest())
    s0 = sign("AWS4-HMAC-SHA256-PAYLOAD", s1, EMPTY)
    trailer_line = "x-amz-checksum-crc32:DUoRhQ==\n"
    st = sign(
        "AWS4-HMAC-SHA256-TRAILER", s0, hashlib.sha256(trailer_line.encode()).hexdigest(), False
    )
    body = (
        f"d;chunk-signature={s1}\r\n".encode()
        + data
        + f"\r\n0;chunk-signature={s0}\r\n".encode()
        + f"x-amz-checksum-crc32:DUoRhQ==\r\nx-amz-trailer-signature:{st}\r\n\r\n".encode()
    )

    async def run(raw: bytes) -> tuple[bytes, dict[str, str]]:
        trailer = sigv4.Trailer({})
        out = b"".join(
            [p async for p in sigv4.aws_chunked(pieces(raw, 5), trailer, signed, SECRET)]
        )
        return out, trailer.headers

    out, trailers = asyncio.run(run(body))
    assert out == data and trailers == {"x-amz-checksum-crc32": "DUoRhQ=="}
    with pytest.raises(S3Error):
        asyncio.run(run(body.replace(b"DUoRhQ==", b"AAAAAA==")))


def test_unsigned_trailer_body_decodes_and_yields_its_trailer() -> None:
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"

    async def run() -> tuple[bytes, dict[str, str]]:
        trailer = sigv4.Trailer({})
        out = b"".join([p async for p in sigv4.aws_chunked(pieces(body, 3), trailer)])
        return out, trailer.headers

    assert asyncio.run(run()) == (b"hello", {"x-amz-checksum-crc32": "NhCmhg=="})


# -- SigV2 -------------------------------------------------------------------------------------


def v2(method: str, path: str, query: str, headers: dict[str, str], sig: str) -> bool:
    headers = {**headers, "authorization": f"AWS {ACCESS}:{sig}"}
    date = datetime.strptime(headers["date"], "%a, %d %b %Y %H:%M:%S %z").timestamp()
    signed = sigv4.parse(method, path, query, headers, now=date)
    assert signed is not None and signed.version == 2
    return signed.verify(SECRET)


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "sig"),
    [
        ("GET", "/johnsmith/photos/puppy.jpg", "", {"date": "Tue, 27 Mar 2007 19:36:42 +0000"},
         "bWq2s1WEIj+Ydj0vQ697zp+IXMU="),
        ("PUT", "/johnsmith/photos/puppy.jpg", "",
         {"date": "Tue, 27 Mar 2007 21:15:45 +0000", "content-type": "image/jpeg"},
         "MyyxeRY7whkBe+bq8fHCL/2kKUg="),
        ("GET", "/johnsmith/", "prefix=photos&max-keys=50&marker=puppy",
         {"date": "Tue, 27 Mar 2007 19:42:41 +0000", "user-agent": "Mozilla/5.0"},
         "htDYFYduRNen8P9ZfE/s9SuKy0U="),
        ("GET", "/johnsmith/", "acl", {"date": "Tue, 27 Mar 2007 19:44:46 +0000"},
         "c2WLPFtWHVgbEmeEG93a4cG37dM="),
    ],
)  # fmt: skip
def test_sigv2_rest_authentication_examples_verify(
    method: str, path: str, query: str, headers: dict[str, str], sig: str
) -> None:
    assert v2(method, path, query, headers, sig)


def test_sigv2_presigned_query_example_verifies_until_it_expires() -> None:
    query = f"AWSAccessKeyId={ACCESS}&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D"
    signed = sigv4.parse("GET", "/johnsmith/photos/puppy.jpg", query, {}, now=1175139000)
    assert signed is not None and signed.verify(SECRET)
    with pytest.raises(S3Error):
        sigv4.parse("GET", "/johnsmith/photos/puppy.jpg", query, {}, now=1175139621)


def test_botocore_sigv4_signer_agrees_on_an_arbitrary_request() -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = "http://127.0.0.1:9000/bucket/a%20key/%C3%A9t%C3%A9+x.txt?tagging&x-id=PutObjectTagging"
    request = AWSRequest(method="PUT", url=url, data=b"<Tagging/>")
    S3SigV4Auth(Credentials(ACCESS, SECRET), "s3", "RegionOne").add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()} | {"host": "127.0.0.1:9000"}
    raw_path, _, query = url.split("/", 3)[3].partition("?")
    amz = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert verifies("PUT", "/" + raw_path, query, headers, amz.timestamp())

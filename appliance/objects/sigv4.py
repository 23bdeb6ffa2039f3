"""S3 request authentication: SigV4 (header and presigned query), SigV2 (header and presigned query),
and the aws-chunked body framings with their chunk and trailer signatures.

Pure functions over the request's method, raw path, raw query and headers: no HTTP framework here.
References: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html,
sigv4-streaming.html, sigv4-streaming-trailers.html, and RestAuthentication.html (SigV2).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

from appliance.objects.errors import S3Error

MAX_SKEW = 15 * 60  # seconds, as S3 (RequestTimeTooSkewed)
MAX_PRESIGN = 7 * 24 * 3600  # X-Amz-Expires upper bound
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

# SigV2 signs these sub-resources (and response overrides) as part of the resource.
_V2_SUBRESOURCES = {
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification", "partNumber",
    "policy", "requestPayment", "tagging", "torrent", "uploadId", "uploads", "versionId",
    "versioning", "versions", "website", "restore", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "response-content-language",
    "response-content-type", "response-expires",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Signed:
    """A request whose signature is still to be checked against the access key's secret."""

    access: str
    version: int  # 2 or 4
    # secret -> expected signature
    expected: Callable[[str], str]
    signature: str
    # SigV4 only: what aws-chunked chunk signatures chain from
    scope: str = ""
    amz_date: str = ""
    date: str = ""
    region: str = ""

    def verify(self, secret: str) -> bool:
        return hmac.compare_digest(self.expected(secret), self.signature)

    def signing_key(self, secret: str) -> bytes:
        return signing_key(secret, self.date, self.region)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.digest(key, msg.encode(), "sha256")


@functools.lru_cache(maxsize=1024)  # a key serves a whole day of one credential's requests
def signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    key = _hmac(("AWS4" + secret).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def aws_quote(value: str, safe: str = "-_.~") -> str:
    return quote(value, safe=safe)


def parse_query(raw: str) -> list[tuple[str, str]]:
    """The query as (name, value) pairs, decoded ('+' stays '+': AWS clients send %20 for space)."""
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote(name), unquote(value)))
    return pairs


def _canonical_query(pairs: list[tuple[str, str]], skip: str = "") -> str:
    encoded = sorted((aws_quote(k), aws_quote(v)) for k, v in pairs if k != skip)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _canonical_headers(headers: Mapping[str, str], names: list[str]) -> str:
    lines = []
    for name in names:
        value = headers.get(name)
        if value is None:
            raise S3Error("SignatureDoesNotMatch", f"Signed header {name} is missing.")
        lines.append(f"{name}:{' '.join(value.strip().split())}\n")
    return "".join(lines)


def _uris(raw_path: str) -> list[str]:
    """Canonical URI candidates: the path as sent, and the path re-encoded the AWS way (clients differ)."""
    ours = aws_quote(unquote(raw_path), safe="/-_.~")
    return [raw_path] if ours == raw_path else [raw_path, ours]


def _parse_amz_date(value: str) -> float:
    """Seconds since the epoch of an ISO 8601 basic time (20261124T093100Z); strptime is slow."""
    try:
        if len(value) != 16 or not value.isascii() or value[8] != "T" or value[15] != "Z":
            raise ValueError(value)
        if not (value[:8].isdigit() and value[9:15].isdigit()):
            raise ValueError(value)
        return datetime(int(value[:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]),
                        int(value[11:13]), int(value[13:15]), tzinfo=UTC).timestamp()  # fmt: skip
    except ValueError:
        raise S3Error("AccessDenied", f"Invalid X-Amz-Date: {value}") from None


def _v4(
    method: str,
    raw_path: str,
    pairs: list[tuple[str, str]],
    headers: Mapping[str, str],
    credential: str,
    signed_headers: str,
    signature: str,
    amz_date: str,
    payload: str,
    skip: str = "",
) -> Signed:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or parts[3] != "s3":
        raise S3Error("AuthorizationHeaderMalformed", f"Malformed credential: {credential}")
    access, date, region = parts[0], parts[1], parts[2]
    if not amz_date.startswith(date):
        raise S3Error(
            "AuthorizationHeaderMalformed", "The credential date does not match X-Amz-Date."
        )
    scope = f"{date}/{region}/s3/aws4_request"
    names = [n for n in signed_headers.lower().split(";") if n]
    canonical_query = _canonical_query(pairs, skip)
    canonical_headers = _canonical_headers(headers, names)

    def expected(secret: str, uri: str) -> str:
        request = "\n".join(
            [method, uri, canonical_query, canonical_headers, ";".join(names), payload]
        )
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                amz_date,
                scope,
                hashlib.sha256(request.encode()).hexdigest(),
            ]
        )
        return hmac.digest(signing_key(secret, date, region), to_sign.encode(), "sha256").hex()

    uris = _uris(raw_path)

    def any_uri(secret: str) -> str:
        first = expected(secret, uris[0])
        if first == signature or len(uris) == 1:
            return first
        return expected(secret, uris[1])

    return Signed(access, 4, any_uri, signature, scope, amz_date, date, region)


def _v2(
    method: str,
    raw_path: str,
    pairs: list[tuple[str, str]],
    headers: Mapping[str, str],
    access: str,
    signature: str,
    date_or_expires: str,
) -> Signed:
    amz = sorted(
        (k, " ".join(v.strip().split())) for k, v in headers.items() if k.startswith("x-amz-")
    )
    amz_lines = "".join(f"{k}:{v}\n" for k, v in amz)
    subs = sorted((k, v) for k, v in pairs if k in _V2_SUBRESOURCES)
    resource = raw_path
    if subs:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)
    to_sign = "\n".join(
        [
            method,
            headers.get("content-md5", ""),
            headers.get("content-type", ""),
            date_or_expires,
        ]
    )
    to_sign += "\n" + amz_lines + resource

    def expected(secret: str) -> str:
        digest = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    return Signed(access, 2, expected, signature)


def parse(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    now: float | None = None,
) -> Signed | None:
    """What signs this request (None: anonymous). Checks form, clock skew and expiry, not the secret."""
    now = time.time() if now is None else now
    pairs = parse_query(raw_query)
    query = dict(pairs)
    auth = headers.get("authorization", "")
    if auth.startswith("AWS4-HMAC-SHA256 "):
        fields = dict(item.strip().split("=", 1) for item in auth[17:].split(",") if "=" in item)
        try:
            credential, signed, signature = (
                fields["Credential"],
                fields["SignedHeaders"],
                fields["Signature"],
            )
        except KeyError:
            raise S3Error(
                "AuthorizationHeaderMalformed", "The authorization header is malformed."
            ) from None
        amz_date = headers.get("x-amz-date") or ""
        if amz_date:
            when = _parse_amz_date(amz_date)
        else:
            when = _http_date(headers.get("date", ""))
            amz_date = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")
        if abs(now - when) > MAX_SKEW:
            raise S3Error(
                "RequestTimeTooSkewed",
                "The difference between the request time and the server's time is too large.",
            )
        payload = headers.get("x-amz-content-sha256")
        if payload is None:
            raise S3Error("InvalidRequest", "Missing required header x-amz-content-sha256.")
        return _v4(
            method, raw_path, pairs, headers, credential, signed, signature, amz_date, payload
        )
    if auth.startswith("AWS4-ECDSA-P256-SHA256") or query.get("X-Amz-Algorithm", "").startswith(
        "AWS4-ECDSA"
    ):
        raise S3Error("NotImplemented", "SigV4a (ECDSA) signatures are not supported.")
    if auth.startswith("AWS "):
        access, _, signature = auth[4:].rpartition(":")
        date = headers.get("x-amz-date") or headers.get("date", "")
        if abs(now - _http_date(date)) > MAX_SKEW:
            raise S3Error(
                "RequestTimeTooSkewed",
                "The difference between the request time and the server's time is too large.",
            )
        # With x-amz-date the Date line of the string to sign is empty (it is among the amz headers).
        return _v2(
            method,
            raw_path,
            pairs,
            headers,
            access,
            signature,
            "" if headers.get("x-amz-date") else date,
        )
    if auth:
        raise S3Error("InvalidArgument", "Unsupported Authorization Type")
    if query.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256":
        try:
            credential = query["X-Amz-Credential"]
            amz_date = query["X-Amz-Date"]
            expires = int(query["X-Amz-Expires"])
            signed = query["X-Amz-SignedHeaders"]
            signature = query["X-Amz-Signature"]
        except (KeyError, ValueError):
            raise S3Error(
                "AuthorizationQueryParametersError", "Query-string authentication is malformed."
            ) from None
        if not 0 < expires <= MAX_PRESIGN:
            raise S3Error(
                "AuthorizationQueryParametersError",
                "X-Amz-Expires must be between 1 and 604800 seconds.",
            )
        when = _parse_amz_date(amz_date)
        if now > when + expires:
            raise S3Error("AccessDenied", "Request has expired")
        if when - now > MAX_SKEW:
            raise S3Error("AccessDenied", "Request is not valid yet")
        payload = headers.get("x-amz-content-sha256", UNSIGNED)
        return _v4(
            method,
            raw_path,
            pairs,
            headers,
            credential,
            signed,
            signature,
            amz_date,
            payload,
            skip="X-Amz-Signature",
        )
    if "AWSAccessKeyId" in query and "Signature" in query:
        expires_at = query.get("Expires", "")
        if not expires_at.isdigit():
            raise S3Error("AccessDenied", "Query-string authentication requires Expires.")
        if now > int(expires_at):
            raise S3Error("AccessDenied", "Request has expired")
        return _v2(
            method,
            raw_path,
            [(k, v) for k, v in pairs if k not in ("AWSAccessKeyId", "Signature", "Expires")],
            headers,
            query["AWSAccessKeyId"],
            query["Signature"],
            expires_at,
        )
    return None


def _http_date(value: str) -> float:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        raise S3Error("AccessDenied", "The request has no valid Date or X-Amz-Date.") from None


# -- aws-chunked bodies --------------------------------------------------------------------------


@dataclass(slots=True)
class Trailer:
    """What the end of an aws-chunked body said: trailing headers (checksums), once read."""

    headers: dict[str, str]


class _Buffer:
    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self.source = source
        self.data = bytearray()
        self.eof = False

    async def fill(self) -> bool:
        if self.eof:
            return False
        try:
            self.data += await anext(self.source)
        except StopAsyncIteration:
            self.eof = True
            return False
        return True

    async def line(self) -> bytes:
        while True:
            at = self.data.find(b"\r\n")
            if at >= 0:
                line = bytes(self.data[:at])
                del self.data[: at + 2]
                return line
            if len(self.data) > 8192 or not await self.fill():
                raise S3Error("IncompleteBody", "The aws-chunked body is truncated or malformed.")


async def aws_chunked(
    body: AsyncIterable[bytes],
    trailer: Trailer,
    signed: Signed | None = None,
    secret: str = "",
) -> AsyncIterator[bytes]:
    """Decode an aws-chunked body; with `signed`, check every chunk signature and the trailer's."""
    buf = _Buffer(aiter(body))
    key = signed.signing_key(secret) if signed else b""
    previous = signed.signature if signed else ""

    def chunk_sig(digest: str) -> str:
        assert signed is not None
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                signed.amz_date,
                signed.scope,
                previous,
                EMPTY_SHA256,
                digest,
            ]
        )
        return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()

    while True:
        header = (await buf.line()).decode("latin-1")
        size_text, _, ext = header.partition(";")
        try:
            size = int(size_text.strip(), 16)
        except ValueError:
            raise S3Error("IncompleteBody", "Malformed aws-chunked chunk header.") from None
        claimed = ext.partition("chunk-signature=")[2].strip()
        if signed and not claimed:
            raise S3Error("SignatureDoesNotMatch", "A chunk of the body has no signature.")
        h = hashlib.sha256() if signed else None
        left = size
        while left:
            if not buf.data and not await buf.fill():
                raise S3Error("IncompleteBody", "The aws-chunked body is truncated.")
            piece = bytes(buf.data[:left])
            del buf.data[: len(piece)]
            left -= len(piece)
            if h is not None:
                h.update(piece)
            yield piece
        if h is not None:
            expected = chunk_sig(h.hexdigest())
            if not hmac.compare_digest(expected, claimed):
                raise S3Error(
                    "SignatureDoesNotMatch", "A chunk signature of the body does not match."
                )
            previous = expected
        if size == 0:
            break
        if await buf.line() != b"":
            raise S3Error("IncompleteBody", "Malformed aws-chunked chunk.")
    # Trailing headers, up to an empty line (or the end of the stream).
    lines: list[str] = []
    while True:
        if not buf.data and not await buf.fill():
            break
        line = (await buf.line()).decode("latin-1")
        if not line:
            break
        lines.append(line)
    trailer_sig = ""
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-amz-trailer-signature":
            trailer_sig = value.strip()
        else:
            trailer.headers[name.strip().lower()] = value.strip()
    if signed and trailer.headers:
        canonical = "".join(f"{k}:{v}\n" for k, v in trailer.headers.items())
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                signed.amz_date,
                signed.scope,
                previous,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, trailer_sig):
            raise S3Error("SignatureDoesNotMatch", "The trailer signature does not match.")

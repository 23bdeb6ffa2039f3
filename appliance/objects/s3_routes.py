"""The S3 port: name the operation, authenticate (before touching the body, so a refused
`Expect: 100-continue` upload never gets its 100), then call the handler for that operation."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from appliance.cloud import Cloud
from appliance.context import Context
from appliance.http_protocol import direct
from appliance.objects import checksums, sigv4, wire
from appliance.objects.checksums import ALGORITHMS
from appliance.objects.errors import S3Error
from appliance.objects.operations import Operation, classify, split_path
from appliance.objects.policy import cors_rule, validate_policy
from appliance.objects.records import Attributes, Caller, Checks, Conditions, Version
from appliance.web.middleware import REQUEST_ID, RequestMiddleware

XML = "application/xml"
SMALL_BODY = 1 << 20  # XML request bodies (DeleteObjects, Complete...) are small
CONTENT_HEADERS = (
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
)


@dataclass(slots=True)
class S3Request:
    request: Request
    cloud: Cloud
    op: Operation
    caller: Caller
    signed: sigv4.Signed | None
    secret: str
    query: dict[str, str]
    headers: dict[str, str]  # lowercase names; the first of repeated headers


def header_map(scope: Scope) -> dict[str, str]:
    """The request's headers as a plain dict, read once (Starlette's Headers scans the raw list on
    every lookup). ASGI servers lowercase the names; a repeated header keeps its first value."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


# -- authentication ------------------------------------------------------------------------------


def authenticate(
    cloud: Cloud, scope: Scope, headers: dict[str, str], request_id: str
) -> tuple[Caller, sigv4.Signed | None, str]:
    raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?")[0]
    signed = sigv4.parse(
        scope["method"],
        raw_path,
        scope.get("query_string", b"").decode("latin-1"),
        headers,
    )
    if signed is None:
        return None, None, ""
    signer = cloud.credentials.signer(signed.access)
    if signer is None:
        raise S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        )
    if not signed.verify(signer.secret):
        raise S3Error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    user, project, roles = signer.user, signer.project, signer.roles
    if not (user.enabled and project.enabled and roles):
        raise S3Error(
            "AccessDenied", "The credential's user or project is disabled, or holds no role."
        )
    ctx = Context(
        user_id=user.id,
        user_name=user.name,
        user_domain_id=user.domain_id,
        roles=frozenset(r.name for r in roles),
        project_id=project.id,
        project_name=project.name,
        project_domain_id=project.domain_id,
        request_id=request_id,
    )
    return ctx, signed, signer.secret


# -- bodies --------------------------------------------------------------------------------------


async def canned_acl(r: S3Request) -> str:
    """The canned ACL (x-amz-acl) of a Put*Acl request; without one, NotImplemented (access
    control policy bodies with grants are not supported)."""
    await small_body(r)
    acl = r.headers.get("x-amz-acl")
    if not acl:
        raise S3Error("NotImplemented", "Only canned ACLs (x-amz-acl) are supported.")
    return acl


async def _empty() -> AsyncIterator[bytes]:
    yield b""


def body_stream(r: S3Request) -> AsyncIterator[bytes]:
    """The request's body; one its framing shows empty is not read, since reading sends `100
    Continue`, one more round trip for nothing (RFC 9110 10.1.1 lets a server omit it)."""
    h = r.headers
    if "transfer-encoding" not in h and h.get("content-length", "0").strip() == "0":
        return _empty()
    return r.request.stream()


def body_and_checks(r: S3Request) -> tuple[AsyncIterable[bytes], Checks]:
    """The decoded body stream, and what it must match (hashes, checksums, length). A plain
    body of more than CHUNK bytes is `Direct`: a blob write reads it from the socket itself."""
    h = r.headers
    payload = h.get("x-amz-content-sha256", "")
    checks = Checks(md5_b64=h.get("content-md5"))
    algorithm = ""
    for name in ALGORITHMS:
        if f"x-amz-checksum-{name}" in h:
            algorithm = name
            checks.checksum_b64 = h[f"x-amz-checksum-{name}"]
    trailer_names = [t.strip().lower() for t in h.get("x-amz-trailer", "").split(",") if t.strip()]
    for t in trailer_names:
        if t.startswith("x-amz-checksum-") and t[15:] in ALGORITHMS:
            algorithm = t[15:]
    if not algorithm and h.get("x-amz-sdk-checksum-algorithm", "").lower() in ALGORITHMS:
        algorithm = h["x-amz-sdk-checksum-algorithm"].lower()
    checks.checksum_algorithm = algorithm
    stream = body_stream(r)
    if payload.startswith("STREAMING-"):
        if payload not in (
            sigv4.STREAMING_SIGNED,
            sigv4.STREAMING_SIGNED_TRAILER,
            sigv4.STREAMING_UNSIGNED_TRAILER,
        ):
            raise S3Error("NotImplemented", f"x-amz-content-sha256 {payload} is not supported.")
        trailer = sigv4.Trailer({})
        signed = r.signed if payload != sigv4.STREAMING_UNSIGNED_TRAILER else None
        if signed is not None and signed.version != 4:
            raise S3Error("InvalidRequest", "Signed aws-chunked bodies need SigV4.")
        decoded = h.get("x-amz-decoded-content-length")
        checks.length = int(decoded) if decoded and decoded.isdigit() else None
        checks.late = lambda: trailer.headers
        return sigv4.aws_chunked(stream, trailer, signed, r.secret), checks
    if payload and payload != sigv4.UNSIGNED:
        if len(payload) != 64:
            raise S3Error(
                "InvalidArgument",
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a SHA256 value.",
            )
        checks.sha256_hex = payload.lower()
    length = h.get("content-length")
    checks.length = int(length) if length and length.isdigit() else None
    return direct(r.request.scope, stream), checks


async def small_body(r: S3Request, checksum_of_body: bool = True) -> bytes:
    """The whole (small) request body, checked. `checksum_of_body=False` where the
    x-amz-checksum-* headers describe an object instead (CompleteMultipartUpload)."""
    stream, checks = body_and_checks(r)
    data = bytearray()
    async for chunk in stream:
        data += chunk
        if len(data) > SMALL_BODY:
            raise S3Error("InvalidRequest", "The request body is too large.")
    if checks.md5_b64 is not None:
        got = checksums.b64(hashlib.md5(data, usedforsecurity=False).digest())
        if checksums.unb64(checks.md5_b64) is None:
            raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.")
        if got != checks.md5_b64:
            raise S3Error(
                "BadDigest", "The Content-MD5 you specified did not match what was received."
            )
    if checks.sha256_hex and hashlib.sha256(data).hexdigest() != checks.sha256_hex:
        raise S3Error(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    if checks.checksum_algorithm and checksum_of_body:
        claimed = checks.checksum_b64
        if checks.late:
            claimed = checks.late().get(f"x-amz-checksum-{checks.checksum_algorithm}", claimed)
        if claimed is not None and claimed != checksums.of_bytes(
            checks.checksum_algorithm, bytes(data)
        ):
            raise S3Error(
                "BadDigest", "The checksum you specified did not match what was received."
            )
    return bytes(data)


def attributes(h: Any) -> Attributes:
    encoding = ",".join(
        e
        for e in (x.strip() for x in h.get("content-encoding", "").split(","))
        if e and e != "aws-chunked"
    )
    headers = {k: h[k] for k in CONTENT_HEADERS if h.get(k)}
    if encoding:
        headers["content-encoding"] = encoding
    else:
        headers.pop("content-encoding", None)
    meta = {k[11:]: v for k, v in h.items() if k.startswith("x-amz-meta-")}
    tagging = wire.parse_tagging_header(h["x-amz-tagging"]) if "x-amz-tagging" in h else {}
    return Attributes(
        content_type=h.get("content-type") or "binary/octet-stream",
        headers=headers,
        meta=meta,
        tagging=tagging,
        acl=h.get("x-amz-acl", ""),
    )


def _date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def conditions(h: Any, prefix: str = "") -> Conditions:
    return Conditions(
        if_match=h.get(prefix + "if-match"),
        if_none_match=h.get(prefix + "if-none-match"),
        if_modified_since=_date(h.get(prefix + "if-modified-since")),
        if_unmodified_since=_date(h.get(prefix + "if-unmodified-since")),
    )


def copy_source(value: str) -> tuple[str, str, str | None]:
    from urllib.parse import unquote

    path, _, query = value.partition("?")
    path = unquote(path).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey.",
        )
    version = None
    if query.startswith("versionId="):
        version = query[10:]
    return bucket, key, version


def object_headers(v: Version, h: Any, ranged: bool = False) -> dict[str, str]:
    out = {
        "ETag": f'"{v.etag}"',
        "Last-Modified": wire.http_date(v.modified),
        "Content-Type": v.content_type,
        "Accept-Ranges": "bytes",
    }
    out.update(v.headers)
    for k, value in v.meta.items():
        out[f"x-amz-meta-{k}"] = value
    if v.version_id != "null":
        out["x-amz-version-id"] = v.version_id
    if v.tagging:
        out["x-amz-tagging-count"] = str(len(v.tagging))
    if v.parts:
        out["x-amz-mp-parts-count"] = str(len(v.parts))
    if v.checksum and not ranged and h.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        out[f"x-amz-checksum-{v.checksum_algorithm}"] = v.checksum
        out["x-amz-checksum-type"] = v.checksum_type
    return out


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a single `bytes=` range; None to ignore the header; InvalidRange if unsatisfiable."""
    if not value.startswith("bytes=") or "," in value:
        return None
    first, _, last = value[6:].strip().partition("-")
    try:
        if first == "":
            n = int(last)
            if n == 0:
                raise S3Error("InvalidRange", "The requested range is not satisfiable")
            return max(0, size - n), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if end <= start:
        return None
    if start >= size:
        raise S3Error(
            "InvalidRange", "The requested range is not satisfiable", ActualObjectSize=str(size)
        )
    return start, min(end, size)


def xml(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status, headers=headers, media_type=XML)


def max_keys(q: dict[str, str], name: str = "max-keys") -> int:
    try:
        value = int(q.get(name, "1000"))
    except ValueError:
        raise S3Error("InvalidArgument", f"{name} must be an integer.") from None
    if value < 0:
        raise S3Error("InvalidArgument", f"{name} must not be negative.")
    return min(value, 1000)


Handler = Callable[[S3Request], Awaitable[Response]]


class S3App:
    """The ASGI app of the S3 port. Handlers come from s3_handlers and s3_buckets (one per operation name)."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        request_id = scope.get(REQUEST_ID, "")
        # The decoded path: Starlette's request.url.path re-quotes "?", "#" and "%" in keys.
        resource = scope["path"]
        headers = header_map(scope)
        try:
            cloud: Cloud = scope["state"]["cloud"]
            store = cloud.objects
            bucket, key = split_path(resource, headers.get("host", ""), store.exists)
            query = dict(sigv4.parse_query(scope.get("query_string", b"").decode("latin-1")))
            op = classify(request.method, bucket, key, query, headers)
            if op.name == "Preflight":
                response = await self.handlers["Preflight"](
                    S3Request(request, cloud, op, None, None, "", query, headers)
                )
            else:
                caller, signed, secret = authenticate(cloud, scope, headers, request_id)
                response = await self.handlers[op.name](
                    S3Request(request, cloud, op, caller, signed, secret, query, headers)
                )
                cors_headers(cloud, op.bucket, headers, request.method, response)
        except S3Error as err:
            response = error_response(err, request.method, resource, request_id)
            if "expect" in headers:
                # The body was never asked for (no 100 Continue went out); a client may send it
                # anyway, so this connection cannot carry another request.
                response.headers["Connection"] = "close"
        await response(scope, receive, send)


def error_response(err: S3Error, method: str, resource: str, request_id: str) -> Response:
    headers = dict(err.headers)  # the middleware adds x-amz-request-id
    if err.status == 304 or method == "HEAD":
        return Response(b"", err.status, headers=headers)
    return xml(wire.error_xml(err, resource, request_id), err.status, headers)


def cors_headers(
    cloud: Cloud, bucket: str, headers: dict[str, str], method: str, response: Response
) -> None:
    origin = headers.get("origin")
    if not origin or not bucket:
        return
    rule = cors_rule(cloud.objects.cors(bucket), origin, method)
    if rule is not None:
        response.headers["Access-Control-Allow-Origin"] = (
            "*" if "*" in rule["AllowedOrigin"] else origin
        )
        response.headers["Access-Control-Allow-Methods"] = ", ".join(rule["AllowedMethod"])
        if rule.get("ExposeHeader"):
            response.headers["Access-Control-Expose-Headers"] = ", ".join(rule["ExposeHeader"])


def s3_app() -> Any:
    from appliance.objects import s3_buckets  # noqa: F401  (registers the bucket operations)
    from appliance.objects.s3_handlers import HANDLERS

    return RequestMiddleware(
        S3App(HANDLERS), resolver=lambda scope: None, id_header="x-amz-request-id"
    )


def streaming(chunks: AsyncIterator[bytes], status: int, headers: dict[str, str]) -> Response:
    return StreamingResponse(chunks, status, headers=headers)


__all__ = ["S3App", "s3_app", "validate_policy"]

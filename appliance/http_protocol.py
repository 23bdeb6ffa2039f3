"""uvicorn's httptools protocol, handing request bodies to the app in batches of up to BATCH bytes.

uvicorn copies every body chunk into a bytearray (`body += chunk`), pauses reading past 64 KiB and
hands the app `bytes(bytearray)`, a second copy, as soon as any chunk arrived; the object store and
the image upload then join those 64 to 256 KiB pieces into 1 MiB buffers for the hashing and writing
threads, a third. Here the chunks are kept as they came, the app is woken once BATCH bytes are held
(or the body is complete), and they are joined once: one copy in place of three, and one wake-up of
the app's task per MiB rather than one per socket read. Everything else is uvicorn's own.

A large body with a Content-Length can also be read past the parser altogether: the app finds an
`Offer` in the request's scope (`scope["extensions"][OFFER]`) and a blob write `take`s it, then
reads the body in a thread straight from the socket into its own aligned buffers (`SocketBody`).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import AsyncIterable
from typing import Any

import httptools
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from appliance.blobs import CHUNK, Direct

BATCH = 1 << 20  # wake the app once this much body is held (uvicorn: at every chunk)
OFFER = "nube.socket_body"  # the scope extension that holds a request's Offer
BODY_TIMEOUT = 60  # seconds a SocketBody waits for the client to send more


class HeldBody:
    """The body received since the app last asked, as the chunks it came in. uvicorn's `receive`
    takes `bytes(cycle.body)`, which joins them, then starts a new bytearray."""

    __slots__ = ("parts", "size")

    def __init__(self, first: bytes | bytearray) -> None:
        self.parts: list[bytes] = [bytes(first)] if first else []
        self.size = len(first)

    def append(self, chunk: bytes) -> None:
        self.parts.append(chunk)
        self.size += len(chunk)

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


class BatchingHttpToolsProtocol(HttpToolsProtocol):
    seen = 0  # body bytes the parser has given of the current request

    def on_headers_complete(self) -> None:
        self.seen = 0
        super().on_headers_complete()
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and cycle.scope is self.scope and self.scheme == "http":
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
            extensions[OFFER] = Offer(self, cycle)

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        self.seen += len(body)
        held: object = cycle.body
        if not isinstance(held, HeldBody):
            held = HeldBody(cycle.body)
            # uvicorn reads it only through bytes() and len()
            cycle.body = held  # type: ignore[assignment]
        held.append(body)
        if held.size >= BATCH:
            self.flow.pause_reading()  # the app's next receive() resumes it
            cycle.message_event.set()


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The body's length, when the request states it plainly (no transfer coding)."""
    lengths = [v for k, v in headers if k == b"content-length"]
    if len(lengths) != 1 or any(k == b"transfer-encoding" for k, _ in headers):
        return None
    value = lengths[0].strip()
    return int(value) if value.isdigit() else None


class Offer:
    """A request's body, offered to be read straight from the socket rather than through the
    parser: no copy into Python bytes per socket read, one for the parser's body piece and one
    to join them, and no wake-up of the event loop per read. `take` answers None when the body
    cannot be read so (no Content-Length, already complete or partly handed to the app, the
    connection closing or writing); the app then reads it as usual."""

    def __init__(self, protocol: BatchingHttpToolsProtocol, cycle: RequestResponseCycle) -> None:
        self.protocol = protocol
        self.cycle = cycle
        self.size = _content_length(protocol.headers)
        self.taken = False

    def take(self) -> SocketBody | None:
        """Stop the parser reading this request and hand its body to a SocketBody (on the loop)."""
        p, cycle = self.protocol, self.cycle
        held = cycle.body
        if (
            self.taken
            or self.size is None
            or p.cycle is not cycle
            or not cycle.more_body
            or cycle.response_complete
            or cycle.disconnected
            or p.transport.is_closing()
            or p.transport.get_write_buffer_size()
            or len(held) != p.seen  # the app already has some of the body
        ):
            return None
        sock = p.transport.get_extra_info("socket")
        if sock is None:
            return None
        self.taken = True
        p.flow.pause_reading()
        if cycle.waiting_for_100_continue:  # as uvicorn's receive() does before the body
            p.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        head = bytes(held)
        cycle.body = bytearray()
        return SocketBody(self, os.dup(sock.fileno()), head, self.size)  # head is all of it seen

    def finish(self, whole: bool) -> None:
        """Give the connection back (on the loop): with the whole body read, to a new parser for
        the next request; otherwise the rest of the body is still on the wire, and the connection
        closes once the response is sent."""
        p, cycle = self.protocol, self.cycle
        if whole:
            p.parser = httptools.HttpRequestParser(p)  # the old one still expects the body
            cycle.more_body = False
            cycle.message_event.set()
            p.flow.resume_reading()
        else:
            cycle.keep_alive = False


class SocketBody:
    """A request body of `size` bytes: what the parser had already read (`head`), then the rest
    from the socket, which stays blocking (with a BODY_TIMEOUT) until `close`. `readinto` runs
    in one thread at a time; `close` on the event loop, once no `readinto` runs."""

    def __init__(self, offer: Offer, fd: int, head: bytes, size: int) -> None:
        self.offer = offer
        self.head = memoryview(head)
        self.size = size
        self.left = size  # bytes not yet read into the caller's buffers
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(True)  # the loop does not read or write it meanwhile
        self._timeout(BODY_TIMEOUT)

    def _timeout(self, seconds: int) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, 0))

    def readinto(self, view: memoryview) -> None:
        """Fill `view` with the next body bytes; ClientDisconnect if the client stops first."""
        if len(view) > self.left:
            raise ValueError("past the end of the body")
        at = min(len(self.head), len(view))
        view[:at] = self.head[:at]
        self.head = self.head[at:]
        while at < len(view):
            try:
                n = self.sock.recv_into(view[at:], len(view) - at, socket.MSG_WAITALL)
            except (BlockingIOError, TimeoutError, ConnectionError) as exc:
                raise ClientDisconnect() from exc
            if n == 0:
                raise ClientDisconnect()
            at += n
        self.left -= len(view)

    def abort(self) -> None:
        """Wake a `readinto` blocked in another thread (it then raises ClientDisconnect)."""
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def close(self) -> None:
        whole = self.left == 0
        try:
            self._timeout(0)
            self.sock.setblocking(False)
        except OSError:
            whole = False
        self.sock.close()  # our duplicate of the descriptor
        self.offer.finish(whole)


def offer_of(scope: Any) -> Offer | None:
    """The request's Offer, if its server makes one."""
    return scope.get("extensions", {}).get(OFFER)


def direct(scope: Any, stream: AsyncIterable[bytes]) -> AsyncIterable[bytes]:
    """A request's body `stream`; for one of more than CHUNK bytes that states its length, a
    Direct wrapping it, which a blob write takes to read the body from the socket itself."""
    offer = offer_of(scope)
    if offer is not None and offer.size is not None and offer.size > CHUNK:
        return Direct(stream, offer.size, offer.take)
    return stream

"""uvicorn's httptools protocol, handing request bodies to the app in batches of up to BATCH bytes.

uvicorn copies every body chunk into a bytearray (`body += chunk`), pauses reading past 64 KiB and
hands the app `bytes(bytearray)`, a second copy, as soon as any chunk arrived; the object store and
the image upload then join those 64 to 256 KiB pieces into 1 MiB buffers for the hashing and writing
threads, a third. Here the chunks are kept as they came, the app is woken once BATCH bytes are held
(or the body is complete), and they are joined once: one copy in place of three, and one wake-up of
the app's task per MiB rather than one per socket read. Everything else is uvicorn's own.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

BATCH = 1 << 20  # wake the app once this much body is held (uvicorn: at every chunk)


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
    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        held: object = cycle.body
        if not isinstance(held, HeldBody):
            held = HeldBody(cycle.body)
            # uvicorn reads it only through bytes() and len()
            cycle.body = held  # type: ignore[assignment]
        held.append(body)
        if held.size >= BATCH:
            self.flow.pause_reading()  # the app's next receive() resumes it
            cycle.message_event.set()

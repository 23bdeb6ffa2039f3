"""Remote consoles: short-lived tokens for a server's VNC, and the token-checked websocket proxy
(/novnc/websockify?token=...) that carries RFB bytes between a noVNC client and QEMU's VNC on
127.0.0.1, through the Nube port (nova-novncproxy's job)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from urllib.parse import quote

from sqlite_utils import Database
from starlette.websockets import WebSocket, WebSocketDisconnect

from appliance.compute.hypervisor import Hypervisor
from appliance.compute.models import Server
from appliance.errors import Conflict, Invalid

log = logging.getLogger("nube.console")

TOKEN_SECONDS = 600  # Nova's [consoleauth] token_ttl


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Consoles:
    def __init__(self, db: Database, hypervisor: Hypervisor) -> None:
        self.db = db
        self.hv = hypervisor

    def issue(self, server: Server, protocol: str, kind: str, base_url: str) -> str:
        """A console URL for a running server; the token in it works for TOKEN_SECONDS."""
        if protocol != "vnc" or kind not in ("novnc", "xvpvnc"):
            raise Invalid(
                f"Unsupported console: protocol {protocol}, type {kind}; only vnc/novnc is offered."
            )
        if server.status not in ("ACTIVE", "PAUSED", "VERIFY_RESIZE"):
            raise Conflict(
                f"Instance {server.id} is not ready for a console (status {server.status})."
            )
        token = secrets.token_urlsafe(24)
        now = time.time()
        with self.db.atomic():
            self.db.execute("DELETE FROM console_tokens WHERE expires_at < ?", [now])
            self.db.execute(
                "INSERT INTO console_tokens (token_hash, server_id, expires_at) VALUES (?,?,?)",
                [_hash(token), server.id, now + TOKEN_SECONDS],
            )
        path = quote(f"novnc/websockify?token={token}", safe="")
        return f"{base_url}/novnc/vnc_lite.html?path={path}"

    def server_of(self, token: str) -> str | None:
        row = self.db.execute(
            "SELECT server_id, expires_at FROM console_tokens WHERE token_hash = ?", [_hash(token)]
        ).fetchone()
        if row is None or row[1] < time.time():
            return None
        return str(row[0])

    async def proxy(self, websocket: WebSocket, server_id: str) -> None:
        ports = await asyncio.to_thread(self.hv.vnc_ports, f"nube-{server_id}")
        if ports is None:
            await websocket.close(code=1011, reason="the server has no console now")
            return
        reader, writer = await asyncio.open_connection("127.0.0.1", ports[0])
        offered = websocket.headers.get("sec-websocket-protocol", "")
        await websocket.accept(subprotocol="binary" if "binary" in offered else None)
        log.info("console of server %s opened", server_id)

        async def to_vnc() -> None:
            try:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    data = message.get("bytes") or (message.get("text") or "").encode()
                    writer.write(data)
                    await writer.drain()
            except WebSocketDisconnect:
                pass

        async def to_client() -> None:
            while data := await reader.read(65536):
                await websocket.send_bytes(data)

        tasks = [asyncio.create_task(to_vnc()), asyncio.create_task(to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            writer.close()
            try:
                await websocket.close()
            except RuntimeError:
                pass
            log.info("console of server %s closed", server_id)

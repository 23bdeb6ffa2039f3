"""Running `nube serve`: one lock per data dir, two listening sockets, one uvicorn server, one loop."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import IO

import uvicorn

from appliance import memory
from appliance.app import PortDispatch, create_app, s3_app
from appliance.config import Config
from appliance.http_protocol import BatchingHttpToolsProtocol

log = logging.getLogger("nube")


class AlreadyRunning(Exception):
    pass


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on <data-dir>/nube.lock for the life of the process."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = open(data_dir / "nube.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(
            f"another nube serve (pid {pid}) is already using {data_dir}; stop it first "
            "or choose another --data-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
        force=True,
    )


def serve(config: Config) -> int:
    setup_logging(config.log_level)
    memory.tune()
    try:
        lock = lock_data_dir(config.data_dir)
    except AlreadyRunning as exc:
        print(f"nube: {exc}", file=sys.stderr)
        return 1
    try:
        api_sock = listen(config.bind, config.port)
        s3_sock = listen(config.bind, config.s3_port)
    except OSError as exc:
        print(f"nube: {exc}", file=sys.stderr)
        return 1
    app = PortDispatch(create_app(config), s3_app(), s3_sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            lifespan="on",
            log_config=None,
            access_log=False,
            loop="uvloop",
            http=BatchingHttpToolsProtocol,
            ws="websockets-sansio",
            server_header=False,
            timeout_graceful_shutdown=15,
        )
    )
    log.info(
        "nube %s serving %s: API on http://%s:%d, S3 on http://%s:%d",
        config.data_dir,
        "",
        config.bind,
        api_sock.getsockname()[1],
        config.bind,
        s3_sock.getsockname()[1],
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal; exit 0 then.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run(sockets=[api_sock, s3_sock])
    finally:
        lock.close()
    return 0 if server.started else 1

"""The metadata service at 169.254.169.254, inside every DHCP namespace, answered by this process.

Each DHCP namespace holds 169.254.169.254/32 beside its DHCP address, and dnsmasq hands guests a
classless static route to it (option 121). Nube opens a listening socket *inside* each namespace
(a short-lived thread enters it with setns, binds, and leaves; the socket stays in the namespace) and
serves it from its own event loop. The listener knows its subnet and the peer's address is the guest's
port address (anti-spoofing keeps it honest), so each guest gets its own server's data and never
another's, even where projects' CIDRs overlap: this is what neutron-metadata-agent and nova-metadata
do together, without a proxy process.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from appliance.compute.configdrive import VERSIONS

log = logging.getLogger("nube.network")

ADDRESS = "169.254.169.254"
CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True, slots=True)
class InstanceData:
    """What one server's guest may read about itself."""

    server_id: str
    meta_data: dict[str, Any]
    user_data: bytes | None
    network_data: dict[str, Any]
    local_ipv4: str
    public_ipv4: str | None


# (subnet id, peer address) -> the data of the server whose port holds that address there, or None
Lookup = Callable[[str, str], InstanceData | None]


def socket_in_namespace(namespace: str, port: int = 80) -> socket.socket:
    """A listening TCP socket bound to ADDRESS:port inside a named network namespace."""
    result: dict[str, Any] = {}

    def enter_bind_leave() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(NETNS_DIR / namespace, os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {namespace} failed")
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((ADDRESS, port))
                sock.listen(64)
                sock.setblocking(False)
                result["sock"] = sock
            finally:
                if libc.setns(own, CLONE_NEWNET) != 0:  # this thread ends anyway; be tidy
                    log.error("could not leave namespace %s", namespace)
        except OSError as exc:
            result["error"] = exc
        finally:
            os.close(own)
            os.close(target)

    worker = threading.Thread(target=enter_bind_leave, name=f"netns-{namespace[:20]}")
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]


def namespace_inode(namespace: str) -> int | None:
    try:
        return (NETNS_DIR / namespace).stat().st_ino
    except OSError:
        return None


class Metadata:
    """One listener per DHCP namespace, kept in step with the datapath by `sync`."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.listeners: dict[
            str, tuple[int, uvicorn.Server]
        ] = {}  # subnet -> (netns inode, server)

    async def sync(self, namespaces: dict[str, str]) -> None:
        """`namespaces` maps each DHCP-served subnet to its namespace; close the rest."""
        for subnet_id in sorted(set(self.listeners) - set(namespaces)):
            await self._close(subnet_id)
        for subnet_id, namespace in sorted(namespaces.items()):
            inode = namespace_inode(namespace)
            if inode is None:
                continue
            held = self.listeners.get(subnet_id)
            if held is not None and held[0] == inode:
                continue
            if held is not None:  # the namespace was made anew (deleted by hand, then reconciled)
                await self._close(subnet_id)
            try:
                sock = await asyncio.to_thread(socket_in_namespace, namespace)
            except OSError as exc:
                log.error("metadata service for subnet %s not started: %s", subnet_id, exc)
                continue
            config = uvicorn.Config(
                _app(subnet_id, self.lookup), lifespan="off", log_config=None, access_log=False,
                timeout_graceful_shutdown=2,
            )  # fmt: skip
            config.load()
            server = uvicorn.Server(config)
            # What Server.serve() would set up, without serve()'s signal handlers (the main
            # server's are in charge): no lifespan for this small app.
            server.lifespan = config.lifespan_class(config)
            await server.startup(sockets=[sock])
            self.listeners[subnet_id] = (inode, server)
            log.info("metadata service on %s:80 in %s", ADDRESS, namespace)

    async def _close(self, subnet_id: str) -> None:
        _, server = self.listeners.pop(subnet_id)
        await server.shutdown()

    async def close(self) -> None:
        for subnet_id in list(self.listeners):
            await self._close(subnet_id)


def _app(subnet_id: str, lookup: Lookup) -> Starlette:
    async def serve(request: Request) -> Response:
        peer = request.client.host if request.client else ""
        data = await asyncio.to_thread(lookup, subnet_id, peer)
        path = request.url.path
        if data is None:
            log.info("metadata GET %s from %s: no server has that address here: 404", path, peer)
            return PlainTextResponse("No instance has this address.\n", status_code=404)
        response = answer(data, path)
        log.info(
            "metadata GET %s for server %s (%s): %d", path, data.server_id, peer,
            response.status_code,
        )  # fmt: skip
        return response

    return Starlette(routes=[Route("/{path:path}", serve, methods=["GET", "HEAD"])])


OPENSTACK_FILES = {"meta_data.json", "user_data", "vendor_data.json", "vendor_data2.json",
                   "network_data.json"}  # fmt: skip
EC2_VERSIONS = ("1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
                "2008-02-01", "2008-09-01", "2009-04-04", "latest")  # fmt: skip


def answer(data: InstanceData, path: str) -> Response:
    """Nova's metadata tree for one server: the OpenStack one and the common part of EC2's."""
    parts = [p for p in path.split("/") if p]
    text = PlainTextResponse
    if not parts:
        return text("\n".join(EC2_VERSIONS))
    if parts[0] == "openstack":
        versions = [v for v, *_ in VERSIONS]
        if len(parts) == 1:
            return text("\n".join(versions))
        if parts[1] not in versions:
            return text("Not found\n", status_code=404)
        has = {v: (vendor, network, vendor2) for v, vendor, network, vendor2 in VERSIONS}
        vendor, network, vendor2 = has[parts[1]]
        files = ["meta_data.json", *(["user_data"] if data.user_data is not None else [])]
        files += ["vendor_data.json"] * vendor + ["network_data.json"] * network
        files += ["vendor_data2.json"] * vendor2
        if len(parts) == 2:
            return text("\n".join(files))
        name = parts[2]
        if len(parts) > 3 or name not in files:
            return text("Not found\n", status_code=404)
        if name == "meta_data.json":
            return JSONResponse(data.meta_data)
        if name == "user_data":
            return Response(data.user_data or b"", media_type="application/octet-stream")
        if name == "network_data.json":
            return JSONResponse(data.network_data)
        return JSONResponse({})
    if parts[0] in EC2_VERSIONS:
        return _ec2(data, parts[1:])
    return text("Not found\n", status_code=404)


def _ec2(data: InstanceData, parts: list[str]) -> Response:
    text = PlainTextResponse
    if not parts:
        return text("meta-data/\nuser-data" if data.user_data is not None else "meta-data/")
    if parts[0] == "user-data" and len(parts) == 1:
        if data.user_data is None:
            return text("Not found\n", status_code=404)
        return Response(data.user_data, media_type="application/octet-stream")
    if parts[0] != "meta-data":
        return text("Not found\n", status_code=404)
    meta = data.meta_data
    keys = list(meta.get("public_keys", {}).items())
    items: dict[str, str] = {
        "ami-launch-index": str(meta.get("launch_index", 0)),
        "hostname": str(meta.get("hostname", "")),
        "instance-id": data.server_id,
        "local-hostname": str(meta.get("hostname", "")),
        "local-ipv4": data.local_ipv4,
        "placement/availability-zone": str(meta.get("availability_zone", "nova")),
    }
    if data.public_ipv4:
        items["public-ipv4"] = data.public_ipv4
    rest = "/".join(parts[1:])
    if not rest:
        tops = sorted({k.split("/")[0] + ("/" if "/" in k else "") for k in items})
        return text("\n".join([*tops, *(["public-keys/"] if keys else [])]))
    if rest in items:
        return text(items[rest])
    if rest == "placement":
        return text("availability-zone")
    if parts[1] == "public-keys":
        if len(parts) == 2:
            return text("\n".join(f"{i}={name}" for i, (name, _) in enumerate(keys)))
        index = parts[2].split("=")[0]
        if index.isdigit() and int(index) < len(keys):
            if len(parts) == 3:
                return text("openssh-key")
            if len(parts) == 4 and parts[3] == "openssh-key":
                return text(keys[int(index)][1])
    return text("Not found\n", status_code=404)

"""The one compute host: its hypervisor and nova-compute service as Nova's admin views see them.

The state is libvirt's: "up" when the connection answers now. What the host has and uses comes from
libvirt too; when it does not answer, the last values read stay (with the time they were read), as
Nova keeps a compute node's last report.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlite_utils import Database

from appliance.compute.hypervisor import HostInfo, Hypervisor, HypervisorError
from appliance.context import Context
from appliance.errors import Forbidden

HOST = "nube"  # the host name servers show in OS-EXT-SRV-ATTR:host
ZONE = "nova"
BINARY = "nova-compute"
GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class Disk:
    total_gib: int
    used_gib: int
    free_gib: int


@dataclass(frozen=True, slots=True)
class HostStatus:
    up: bool
    error: str  # libvirt's message when it does not answer, else ""
    info: HostInfo | None  # None until libvirt answered once
    seen_at: str | None  # when libvirt last answered (Nova's service updated_at)
    disk: Disk
    workload: int  # servers with a task under way (Nova's current_workload)
    uptime: str | None  # `uptime` as Nova's libvirt driver reports it
    host_ip: str
    hypervisor_id: str
    service_id: str
    servers: tuple[tuple[str, str], ...]  # (id, name) of the servers on the host


def require_admin(ctx: Context, rule: str) -> None:
    if not ctx.is_admin:
        raise Forbidden(f"Policy doesn't allow {rule} to be performed.")


def _uptime() -> str | None:
    try:
        out = subprocess.run(
            ["uptime"], capture_output=True, text=True, timeout=10, env={**os.environ, "LANG": "C"}
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _host_ip(bind: str) -> str:
    """The address Nube serves on, or, bound to every address, the one of the default route
    (a UDP connect picks the source address without sending anything)."""
    if bind not in ("", "0.0.0.0", "::"):
        return bind
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def _disk(path: Path) -> Disk:
    usage = shutil.disk_usage(path)
    return Disk(usage.total // GIB, usage.used // GIB, usage.free // GIB)


class Hosts:
    def __init__(
        self, db: Database, hypervisor: Hypervisor, data_dir: Path, cloud_id: str, bind: str
    ) -> None:
        self.db = db
        self.hv = hypervisor
        self.data_dir = data_dir
        self.bind = bind
        # Stable per installation: Nova's compute node and service uuids (2.53+ ids).
        self.hypervisor_id = str(uuid.uuid5(uuid.UUID(cloud_id), "hypervisor"))
        self.service_id = str(uuid.uuid5(uuid.UUID(cloud_id), BINARY))
        self._last: HostInfo | None = None
        self._seen_at: str | None = None

    async def _probe(self) -> str:
        """Ask libvirt now; "" when it answered, else its message."""
        try:
            info = await asyncio.to_thread(self.hv.host)
        except HypervisorError as err:
            return str(err) or "libvirt does not answer"
        self._last = info
        self._seen_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        return ""

    async def available(self) -> bool:
        """Whether the compute service is up (for the availability zone list, open to all)."""
        return await self._probe() == ""

    async def status(self, ctx: Context, rule: str, with_servers: bool = False) -> HostStatus:
        require_admin(ctx, rule)
        error = await self._probe()
        workload = self.db.execute(
            "SELECT count(*) FROM servers WHERE vm_state != 'deleted' AND task_state IS NOT NULL"
        ).fetchone()[0]
        servers: tuple[tuple[str, str], ...] = ()
        if with_servers:
            rows = self.db.execute(
                "SELECT id, name FROM servers WHERE vm_state != 'deleted' ORDER BY created_at, id"
            ).fetchall()
            servers = tuple((r[0], r[1]) for r in rows)
        disk, uptime = await asyncio.gather(
            asyncio.to_thread(_disk, self.data_dir), asyncio.to_thread(_uptime)
        )
        return HostStatus(
            up=not error, error=error, info=self._last, seen_at=self._seen_at, disk=disk,
            workload=int(workload), uptime=uptime if not error else None,
            host_ip=_host_ip(self.bind), hypervisor_id=self.hypervisor_id,
            service_id=self.service_id, servers=servers,
        )  # fmt: skip

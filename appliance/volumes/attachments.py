"""Attaching volumes to servers: Nova's os-volume_attachments, checked against both services."""

from __future__ import annotations

import asyncio
import builtins
import uuid
from typing import Any

from appliance.compute.domain_xml import Disk
from appliance.compute.lifecycle import BootDisk
from appliance.compute.models import Server, VmState
from appliance.compute.servers import Servers
from appliance.context import Context
from appliance.errors import Conflict, Invalid, NotFound
from appliance.volumes.models import Status, Volume
from appliance.volumes.operations import Operations, serial_of
from appliance.volumes.service import Volumes, stamp

# nova/compute/api.py: attach_volume and detach_volume state checks
ATTACHABLE = {VmState.ACTIVE, VmState.PAUSED, VmState.STOPPED, VmState.SUSPENDED, VmState.RESIZED}


class Attachments:
    def __init__(self, servers: Servers, volumes: Volumes, operations: Operations) -> None:
        self.servers = servers
        self.volumes = volumes
        self.operations = operations
        servers.prepare_boot_volume = self.prepare_boot_volume

    # -- boot from volume ----------------------------------------------------------------------

    def prepare_boot_volume(self, ctx: Context, server_id: str, bdm: dict[str, Any]) -> None:
        """Make (from an image or snapshot) or reserve the server's root volume, as its vda."""
        source = bdm["source_type"]
        if source == "volume":
            volume = self.volumes.get(ctx, str(bdm["uuid"]))
            if volume.status != Status.AVAILABLE or volume.server_id:
                raise Invalid(
                    f"Volume {volume.id} is {volume.status}; it must be available to boot from."
                )
        else:
            key = "imageRef" if source == "image" else "snapshot_id"
            spec = {key: str(bdm["uuid"]), "size": bdm.get("volume_size"), "name": ""}
            volume = self.volumes.create(ctx, {k: v for k, v in spec.items() if v is not None})
        self.volumes.set(volume.id, server_id=server_id, attachment_id=str(uuid.uuid4()), target="vda",
                         device="/dev/vda", attached_at=stamp(),
                         delete_on_termination=int(bool(bdm.get("delete_on_termination"))))  # fmt: skip
        if volume.status == Status.AVAILABLE:
            self.volumes.set(volume.id, status=Status.ATTACHING)

    async def boot_disk(self, server: Server) -> BootDisk:
        """The root volume of a server booting from one, once its data is there (it may still be
        copying from the image), now in-use."""
        while True:
            root = [v for v in self.volumes.attached_to(server.id) if v.target == "vda"]
            if not root:
                raise RuntimeError(f"server {server.id} has no root volume")
            volume = root[0]
            if volume.status in (Status.AVAILABLE, Status.ATTACHING, Status.IN_USE):
                break
            if volume.status != Status.CREATING:
                raise RuntimeError(f"root volume {volume.id} is {volume.status}")
            await asyncio.sleep(0.5)
        self.volumes.set(volume.id, status=Status.IN_USE)
        props = {k: v for k, v in (volume.image_metadata or {}).items()
                 if k in ("kernel_id", "ramdisk_id", "os_command_line")}  # fmt: skip
        return BootDisk(self.operations.path(volume.id), serial_of(volume.id), props)

    def list(self, ctx: Context, server_id: str) -> list[Volume]:
        self.servers.get(ctx, server_id)
        return self.volumes.attached_to(server_id)

    def summary(self, server_id: str) -> builtins.list[tuple[str, bool]]:
        """(volume id, delete_on_termination) of what a server has attached, for its server body."""
        return [(v.id, v.delete_on_termination) for v in self.volumes.attached_to(server_id)]

    def data_disks(self, server_id: str) -> builtins.list[Disk]:
        """The attached data volumes (not the root) of a server whose domain is (re)defined."""
        return [
            Disk(self.operations.path(v.id), v.target, serial_of(v.id))
            for v in self.volumes.attached_to(server_id)
            if v.target and v.target != "vda" and v.status in (Status.IN_USE, Status.EXTENDING)
        ]

    def get(self, ctx: Context, server_id: str, volume_id: str) -> Volume:
        for volume in self.list(ctx, server_id):
            if volume.id == volume_id:
                return volume
        raise NotFound(f"Volume {volume_id} is not attached to instance {server_id}.")

    def attach(
        self, ctx: Context, server_id: str, volume_id: str, delete_on_termination: bool = False
    ) -> Volume:
        server = self.servers._writable(ctx, server_id)
        if server.vm_state not in ATTACHABLE or server.task_state is not None:
            raise Conflict(
                f"Cannot 'attach_volume' instance {server_id} while it is in vm_state "
                f"{server.vm_state}, task_state {server.task_state}"
            )
        volume = self.volumes.reserve(ctx, volume_id, server_id, server.project_id)
        if delete_on_termination:
            self.volumes.set(volume_id, delete_on_termination=1)
        try:
            self.operations.submit("attach", volume_id, {"at": stamp()})
        except Exception:
            self.operations.release(volume_id)
            raise
        return self.volumes.row(volume.id) or volume

    def detach(self, ctx: Context, server_id: str, volume_id: str) -> None:
        server = self.servers._writable(ctx, server_id)
        volume = self.get(ctx, server_id, volume_id)
        if server.task_state is not None:
            raise Conflict(
                f"Cannot 'detach_volume' instance {server_id} while it is {server.task_state}"
            )
        if volume.target == "vda":
            raise Invalid(f"Can't detach root device volume {volume_id}.")
        if volume.status != Status.IN_USE:
            raise Conflict(f"Invalid volume: volume {volume_id} is {volume.status}, not in-use.")
        self.volumes.set(volume_id, status=Status.DETACHING)
        try:
            self.operations.submit("detach", volume_id, {})
        except Exception:
            self.volumes.set(volume_id, status=Status.IN_USE)
            raise

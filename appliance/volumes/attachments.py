"""Attaching volumes to servers: Nova's os-volume_attachments, checked against both services."""

from __future__ import annotations

from appliance.compute.models import VmState
from appliance.compute.servers import Servers
from appliance.context import Context
from appliance.errors import Conflict, NotFound
from appliance.volumes.models import Status, Volume
from appliance.volumes.operations import Operations
from appliance.volumes.service import Volumes, stamp

# nova/compute/api.py: attach_volume and detach_volume state checks
ATTACHABLE = {VmState.ACTIVE, VmState.PAUSED, VmState.STOPPED, VmState.SUSPENDED, VmState.RESIZED}


class Attachments:
    def __init__(self, servers: Servers, volumes: Volumes, operations: Operations) -> None:
        self.servers = servers
        self.volumes = volumes
        self.operations = operations

    def list(self, ctx: Context, server_id: str) -> list[Volume]:
        self.servers.get(ctx, server_id)
        return self.volumes.attached_to(server_id)

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
        if volume.status != Status.IN_USE:
            raise Conflict(f"Invalid volume: volume {volume_id} is {volume.status}, not in-use.")
        self.volumes.set(volume_id, status=Status.DETACHING)
        try:
            self.operations.submit("detach", volume_id, {})
        except Exception:
            self.volumes.set(volume_id, status=Status.IN_USE)
            raise

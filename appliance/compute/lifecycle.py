"""Server jobs: each API action becomes one job that drives libvirt and the disk, then sets the row's
final state, or ERROR with a fault. `reconcile()` repairs rows after a crash by asking libvirt."""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.blobs import Blobs
from appliance.compute import storage
from appliance.compute.configdrive import build_config_drive
from appliance.compute.hypervisor import Disk, DomainSpec, Hypervisor, Nic, PowerState
from appliance.compute.models import Flavor, Power, Server, Task, VmState
from appliance.compute.servers import Servers, fault, stamp
from appliance.context import Context
from appliance.images.data import ImageData
from appliance.images.models import Image
from appliance.images.service import Images
from appliance.tasks import Jobs

log = logging.getLogger("nube.compute")

GiB = 1024**3
# libvirt power state -> the vm_state a server at rest in it has
AT_REST = {
    PowerState.RUNNING: VmState.ACTIVE,
    PowerState.PAUSED: VmState.PAUSED,
    PowerState.SHUTDOWN: VmState.STOPPED,
    PowerState.CRASHED: VmState.STOPPED,
    PowerState.SUSPENDED: VmState.SUSPENDED,
}


@dataclass(frozen=True, slots=True)
class BootDisk:
    path: Path
    serial: str
    properties: dict[str, Any]  # the image properties the volume carries (kernel_id, ...)


class Lifecycle:
    def __init__(
        self,
        servers: Servers,
        images: Images,
        image_data: ImageData,
        blobs: Blobs,
        jobs: Jobs,
        hypervisor: Hypervisor,
        instances_dir: Path,
        cloud_id: str,
    ) -> None:
        self.servers = servers
        self.images = images
        self.image_data = image_data
        self.blobs = blobs
        self.jobs = jobs
        self.hv = hypervisor
        self.root = instances_dir
        self.base_dir = instances_dir / "_base"
        # Several Nubes may share one libvirt (tests do): each only ever touches domains it made.
        self.cloud_id = cloud_id
        servers.submit = self.submit
        # Called with a server's id once its domain is gone (volumes free their attachments).
        self.on_deleted: list[Callable[[str], None]] = []
        # Set by block storage: the root disk of a server that boots from a volume.
        self.boot_disk: Callable[[Server], Awaitable[BootDisk]] | None = None
        # Set by the network service: the server's ports, bridges and tap names.
        self.network: Any = None
        # Set by block storage: the data volumes attached to a server, for its domain definition.
        self.volume_disks: Callable[[str], list[Disk]] = lambda server_id: []
        self._waiting: set[asyncio.Task[None]] = set()
        jobs.add_reconciler("servers", self.reconcile)
        self._steps: dict[str, Callable[[Server, dict[str, Any]], Awaitable[None]]] = {
            "create": self._spawn,
            "delete": self._delete,
            "stop": self._stop,
            "start": self._start,
            "reboot": self._reboot,
            "pause": self._simple("pause", PowerState.PAUSED, VmState.PAUSED),
            "unpause": self._simple("unpause", PowerState.RUNNING, VmState.ACTIVE),
            "suspend": self._simple("suspend", PowerState.SUSPENDED, VmState.SUSPENDED),
            "resume": self._simple("resume", PowerState.RUNNING, VmState.ACTIVE),
            "resize": self._resize,
            "confirmResize": self._confirm_resize,
            "revertResize": self._revert_resize,
            "rebuild": self._rebuild,
            "createImage": self._snapshot,
        }

    # -- plumbing ------------------------------------------------------------------------------

    def submit(self, action: str, server_id: str, ctx: Context, args: dict[str, Any]) -> None:
        step = self._steps[action]
        action_id = self.servers.record(ctx, server_id, action)

        async def run() -> None:
            server = self.servers.row(server_id)
            assert server is not None
            await step(server, args)
            self.servers.finish(action_id, "Success")

        async def failed(exc: BaseException) -> None:
            detail = "".join(traceback.format_exception(exc))
            self.servers.finish(action_id, "Error", detail)
            server = self.servers.row(server_id)
            if server is None:
                return
            power = await self._power(server)
            if action == "create" or power is None:
                self.servers.set(server_id, vm_state=str(VmState.ERROR), task_state=None, fault=fault(str(exc)),
                                 power_state=int(power or Power.NOSTATE))  # fmt: skip
            else:  # the VM is still there: keep it as it is, clear the task, record the fault
                self.servers.set(server_id, vm_state=str(AT_REST.get(power, VmState.ERROR)), task_state=None,
                                 power_state=int(power), fault=fault(str(exc)))  # fmt: skip
            log.warning("server %s %s failed: %s", server_id, action, exc)

        running = self.jobs.current("server", server_id)
        if action == "delete" and running is not None:
            # Nova lets a BUILD (or busy) server be deleted: the delete runs once that job ends.
            async def after_current() -> None:
                await asyncio.wait([running])
                self.jobs.submit("server", server_id, action, run, failed)

            self._waiting.add(task := asyncio.get_running_loop().create_task(after_current()))
            task.add_done_callback(self._waiting.discard)
            return
        self.jobs.submit("server", server_id, action, run, failed)

    async def _power(self, server: Server) -> PowerState | None:
        return await asyncio.to_thread(self.hv.state, server.domain_name)

    def _dir(self, server: Server) -> Path:
        return self.root / server.id

    def _image(self, image_id: str | None) -> Image:
        image = self.images.row(image_id or "")
        if image is None or not image.blob or image.status.value not in ("active", "deactivated"):
            raise RuntimeError(f"Image {image_id} could not be found or has no data.")
        return image

    async def _base_of(self, image: Image) -> Path:
        assert image.blob
        fmt = "qcow2" if image.disk_format == "qcow2" else "raw"
        return await asyncio.to_thread(
            storage.ensure_base, self.blobs.path(image.blob), self.base_dir, image.id, fmt
        )

    async def _raw_file(self, image_id: str) -> Path:
        """A kernel or ramdisk image, copied once next to the bases (blobs stay untouched)."""
        image = self._image(image_id)
        assert image.blob
        dest = self.base_dir / f"{image.id}.{image.disk_format}"
        if not dest.exists():
            self.base_dir.mkdir(parents=True, exist_ok=True)
            # A temp name of its own: two servers booting from one image copy it at the same time.
            tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
            try:
                await asyncio.to_thread(shutil.copyfile, self.blobs.path(image.blob), tmp)
                tmp.replace(dest)  # the same bytes either way: the last rename wins harmlessly
            finally:
                tmp.unlink(missing_ok=True)
        return dest

    async def _spec(
        self, server: Server, flavor: Flavor, image: Image | None, boot: BootDisk | None = None
    ) -> DomainSpec:
        folder = self._dir(server)
        disks = [
            Disk(boot.path, "vda", boot.serial)
            if boot
            else Disk(folder / "disk", "vda", server.id[:20])
        ]
        if server.config_drive:
            disks.append(
                Disk(
                    folder / "disk.config",
                    "hdd",
                    "config-2",
                    device="cdrom",
                    bus="ide",
                    readonly=True,
                    format="raw",
                )
            )
        disks += self.volume_disks(server.id)  # attached volumes survive resize and rebuild
        kernel = initrd = cmdline = None
        props = boot.properties if boot else image.properties if image else {}
        if props.get("kernel_id"):
            kernel = await self._raw_file(props["kernel_id"])
            if props.get("ramdisk_id"):
                initrd = await self._raw_file(props["ramdisk_id"])
            cmdline = props.get("os_command_line") or "console=ttyS0 root=/dev/vda"
        return DomainSpec(
            name=server.domain_name, uuid=server.id, vcpus=flavor.vcpus, memory_mib=flavor.ram,
            disks=tuple(disks), serial_log=folder / "console.log", kernel=kernel, initrd=initrd, cmdline=cmdline,
            metadata={"cloud_id": self.cloud_id, "server_id": server.id, "project_id": server.project_id, "name": server.name},
            nics=await self._nics(server),
        )  # fmt: skip

    async def _nics(self, server: Server) -> tuple[Nic, ...]:
        """One NIC per port of the server, once the bridges they plug into exist."""
        if self.network is None:
            return ()
        ports = self.network.server_ports(server.id)
        if ports:
            await self.network.settled()
        return tuple(
            Nic(p["mac_address"], self.network.bridge(p["network_id"]), self.network.tap(p["id"]))
            for p in ports
        )

    def _meta_data(self, server: Server) -> dict[str, Any]:
        keys = {server.key_name: server.key_data} if server.key_name and server.key_data else {}
        return {
            "uuid": server.id, "name": server.name, "hostname": server.hostname, "launch_index": server.launch_index,
            "availability_zone": "nova", "project_id": server.project_id, "meta": server.metadata,
            "public_keys": keys, "keys": [{"name": k, "type": "ssh", "data": v} for k, v in keys.items()],
            "devices": [],
        }  # fmt: skip

    def describe(self, server_id: str) -> tuple[dict[str, Any], bytes | None] | None:
        """What the metadata service shows a server's guest: meta_data.json and its user data."""
        server = self.servers.row(server_id)
        if server is None:
            return None
        user_data = base64.b64decode(server.user_data) if server.user_data else None
        return self._meta_data(server), user_data

    async def _prepare_disks(self, server: Server, flavor: Flavor, image: Image | None) -> None:
        """The root overlay (unless the server boots from a volume: image None) and config drive."""
        folder = self._dir(server)
        folder.mkdir(parents=True, exist_ok=True)
        if image is not None:
            base = await self._base_of(image)
            size = flavor.disk * GiB if flavor.disk else None
            await asyncio.to_thread(storage.create_overlay, base, folder / "disk", size)
        if server.config_drive:
            user_data = base64.b64decode(server.user_data) if server.user_data else None
            network_data: dict[str, Any] = (
                self.network.network_data(server.id)
                if self.network is not None
                else {"links": [], "networks": [], "services": []}
            )
            await asyncio.to_thread(
                build_config_drive,
                folder / "disk.config",
                self._meta_data(server),
                user_data,
                network_data,
            )

    def _settle(
        self, server_id: str, vm_state: VmState, power: PowerState | Power, **extra: Any
    ) -> None:
        self.servers.set(
            server_id, vm_state=str(vm_state), task_state=None, power_state=int(power), **extra
        )

    # -- steps ---------------------------------------------------------------------------------

    async def _spawn(self, server: Server, args: dict[str, Any]) -> None:
        self.servers.set(server.id, task_state=str(Task.SPAWNING))
        if server.image_id is None:  # boots from a volume: block storage hands over its disk
            if self.boot_disk is None:
                raise RuntimeError("Booting from a volume needs the block storage service.")
            boot = await self.boot_disk(server)
            await self._prepare_disks(server, server.flavor, None)
            spec = await self._spec(server, server.flavor, None, boot)
        else:
            image = self._image(server.image_id)
            await self._prepare_disks(server, server.flavor, image)
            spec = await self._spec(server, server.flavor, image)
        await asyncio.to_thread(self.hv.create, spec)
        self._settle(server.id, VmState.ACTIVE, PowerState.RUNNING, launched_at=stamp(), fault=None)

    async def _delete(self, server: Server, args: dict[str, Any]) -> None:
        await asyncio.to_thread(self.hv.undefine, server.domain_name)
        await asyncio.to_thread(shutil.rmtree, self._dir(server), True)
        # libvirt keeps QEMU's own log of a domain after undefine; it is ours to remove.
        qemu_log = Path(f"/var/log/libvirt/qemu/{server.domain_name}.log")
        await asyncio.to_thread(qemu_log.unlink, True)
        self.servers.set(server.id, vm_state=str(VmState.DELETED), task_state=None, power_state=int(Power.NOSTATE),
                         terminated_at=stamp(), deleted_at=stamp())  # fmt: skip
        for hook in self.on_deleted:
            hook(server.id)

    async def _stop(self, server: Server, args: dict[str, Any]) -> None:
        await asyncio.to_thread(self.hv.shutdown, server.domain_name, 60)
        self._settle(server.id, VmState.STOPPED, PowerState.SHUTDOWN)

    async def _start(self, server: Server, args: dict[str, Any]) -> None:
        await asyncio.to_thread(self.hv.start, server.domain_name)
        self._settle(server.id, VmState.ACTIVE, PowerState.RUNNING)

    async def _reboot(self, server: Server, args: dict[str, Any]) -> None:
        hard = args.get("type") == "HARD" or server.vm_state != VmState.ACTIVE
        power = await self._power(server)
        if power in (PowerState.SHUTDOWN, PowerState.CRASHED, PowerState.SUSPENDED):
            await asyncio.to_thread(self.hv.start, server.domain_name)
        else:
            await asyncio.to_thread(self.hv.reboot, server.domain_name, hard)
        self._settle(server.id, VmState.ACTIVE, PowerState.RUNNING)

    def _simple(
        self, method: str, power: PowerState, vm_state: VmState
    ) -> Callable[[Server, dict[str, Any]], Awaitable[None]]:
        async def step(server: Server, args: dict[str, Any]) -> None:
            await asyncio.to_thread(getattr(self.hv, method), server.domain_name)
            self._settle(server.id, vm_state, power)

        return step

    async def _resize(self, server: Server, args: dict[str, Any]) -> None:
        new: Flavor = args["flavor"]
        image = self._image(server.image_id)
        folder = self._dir(server)
        was_running = await self._power(server) == PowerState.RUNNING
        await asyncio.to_thread(self.hv.shutdown, server.domain_name, 60)
        # Keep the disk as it was, so a revert gets it back (Nova keeps the source disk too).
        await asyncio.to_thread(shutil.copyfile, folder / "disk", folder / "disk.resize-backup")
        self.servers.set(server.id, task_state=str(Task.RESIZE_FINISH))
        if new.disk and new.disk * GiB > await asyncio.to_thread(
            storage.virtual_size, folder / "disk"
        ):
            await asyncio.to_thread(storage.resize, folder / "disk", new.disk * GiB)
        await asyncio.to_thread(self.hv.redefine, await self._spec(server, new, image))
        if was_running or server.vm_state == VmState.ACTIVE:
            await asyncio.to_thread(self.hv.start, server.domain_name)
        power = await self._power(server) or PowerState.SHUTDOWN
        self.servers.set(server.id, vm_state=str(VmState.RESIZED), task_state=None, power_state=int(power),
                         flavor=new, old_flavor=server.flavor)  # fmt: skip

    async def _confirm_resize(self, server: Server, args: dict[str, Any]) -> None:
        (self._dir(server) / "disk.resize-backup").unlink(missing_ok=True)
        power = await self._power(server) or PowerState.SHUTDOWN
        self._settle(server.id, AT_REST.get(power, VmState.STOPPED), power, old_flavor=None)

    async def _revert_resize(self, server: Server, args: dict[str, Any]) -> None:
        old = server.old_flavor or server.flavor
        folder = self._dir(server)
        image = self._image(server.image_id)
        await asyncio.to_thread(self.hv.shutdown, server.domain_name, 60)
        backup = folder / "disk.resize-backup"
        if backup.exists():
            backup.replace(folder / "disk")
        await asyncio.to_thread(self.hv.redefine, await self._spec(server, old, image))
        await asyncio.to_thread(self.hv.start, server.domain_name)
        self._settle(server.id, VmState.ACTIVE, PowerState.RUNNING, flavor=old, old_flavor=None)

    async def _rebuild(self, server: Server, args: dict[str, Any]) -> None:
        image = self._image(args.get("image_id") or server.image_id)
        changes: dict[str, Any] = {"image_id": image.id}
        for key in ("name", "user_data", "key_name", "key_data", "description"):
            if key in args:
                changes[key] = args[key]
        if changes.get("name"):
            changes["metadata"] = server.metadata
        self.servers.set(server.id, **changes)
        server = self.servers.row(server.id) or server
        await asyncio.to_thread(self.hv.undefine, server.domain_name)
        for name in ("disk", "disk.config"):
            (self._dir(server) / name).unlink(missing_ok=True)
        await self._prepare_disks(server, server.flavor, image)
        spec = await self._spec(server, server.flavor, image)
        await asyncio.to_thread(self.hv.create, spec)
        if server.vm_state == VmState.STOPPED:
            await asyncio.to_thread(self.hv.shutdown, server.domain_name, 60)
            self._settle(server.id, VmState.STOPPED, PowerState.SHUTDOWN, fault=None)
        else:
            self._settle(server.id, VmState.ACTIVE, PowerState.RUNNING, fault=None)

    async def _snapshot(self, server: Server, args: dict[str, Any]) -> None:
        image_id: str = args["image_id"]
        folder = self._dir(server)
        dest = folder / f"snapshot-{image_id}.qcow2"
        power = await self._power(server)
        if power == PowerState.RUNNING:  # a paused guest writes nothing: the disk is consistent
            await asyncio.to_thread(self.hv.pause, server.domain_name)
        try:
            await asyncio.to_thread(storage.flatten, folder / "disk", dest, None, True)
        finally:
            if power == PowerState.RUNNING:
                await asyncio.to_thread(self.hv.unpause, server.domain_name)
        self.servers.set(server.id, task_state=str(Task.IMAGE_UPLOADING))
        try:
            await self.image_data.upload_file(image_id, dest)
        finally:
            dest.unlink(missing_ok=True)
        power = await self._power(server) or PowerState.SHUTDOWN
        self._settle(
            server.id,
            AT_REST.get(power, VmState.ACTIVE)
            if server.vm_state != VmState.SUSPENDED
            else VmState.SUSPENDED,
            power,
        )

    # -- start-up repair -----------------------------------------------------------------------

    async def reconcile(self) -> None:
        domains = {
            name: power
            for name, power in (await asyncio.to_thread(self.hv.domains)).items()
            if (await asyncio.to_thread(self.hv.metadata, name)).get("cloud_id") == self.cloud_id
        }
        rows = self.servers._rows("SELECT * FROM servers WHERE vm_state != 'deleted'", [])
        known = set()
        for row in rows:
            server = Server.from_row(row)
            known.add(server.domain_name)
            power = domains.get(server.domain_name)
            if server.task_state == Task.DELETING:
                log.info("server %s: finishing its delete", server.id)
                await self._delete(server, {})
            elif server.vm_state == VmState.BUILDING:
                if power == PowerState.RUNNING:
                    self._settle(server.id, VmState.ACTIVE, power, launched_at=stamp())
                else:
                    await asyncio.to_thread(self.hv.undefine, server.domain_name)
                    self.servers.set(server.id, vm_state=str(VmState.ERROR), task_state=None, power_state=0,
                                     fault=fault("Nube stopped while this server was being built."))  # fmt: skip
                log.info(
                    "server %s was building when Nube stopped: now %s",
                    server.id,
                    "ACTIVE" if power == PowerState.RUNNING else "ERROR",
                )
            elif power is None:
                if server.vm_state != VmState.ERROR:
                    self.servers.set(server.id, vm_state=str(VmState.ERROR), task_state=None, power_state=0,
                                     fault=fault("The virtual machine of this server is gone."))  # fmt: skip
                    log.warning("server %s: its domain vanished; now ERROR", server.id)
            elif server.task_state is not None or server.power_state != int(power):
                vm_state = (
                    VmState.RESIZED
                    if server.vm_state == VmState.RESIZED
                    else AT_REST.get(power, VmState.STOPPED)
                )
                self._settle(server.id, vm_state, power)
                log.info(
                    "server %s: %s/%s repaired to %s (libvirt says %s)",
                    server.id,
                    server.vm_state,
                    server.task_state,
                    vm_state,
                    power.name,
                )
        for name in set(domains) - known:
            await asyncio.to_thread(self.hv.undefine, name)
            log.warning("domain %s had no server; removed it", name)

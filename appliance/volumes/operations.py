"""Volume jobs: the qcow2 files under <data>/volumes and libvirt hot-plug. Every step is idempotent,
so reconcile() at start-up can finish or undo what a crash interrupted (no volume stays creating,
attaching, detaching, extending or deleting after a restart)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from appliance.blobs import Blobs
from appliance.compute import storage
from appliance.compute.domain_xml import Disk
from appliance.compute.hypervisor import Hypervisor, PowerState
from appliance.compute.servers import Servers
from appliance.images.data import ImageData
from appliance.images.service import Images
from appliance.tasks import Jobs
from appliance.volumes.models import Status, Volume
from appliance.volumes.service import Volumes

log = logging.getLogger("nube.volumes")
GiB = 1 << 30


def serial_of(volume_id: str) -> str:
    """What the guest reads in /sys/block/vdX/serial: virtio-blk keeps 20 bytes (as Nova's do)."""
    return volume_id[:20]


def free_target(domain_xml: str) -> str:
    used = {t.get("dev") for t in ET.fromstring(domain_xml).iter("target") if t.get("dev")}
    for letter in "bcdefghijklmnopqrstuvwxyz":
        if f"vd{letter}" not in used:
            return f"vd{letter}"
    raise RuntimeError("no free disk target left on this server")


def target_with_serial(domain_xml: str, serial: str) -> str | None:
    for disk in ET.fromstring(domain_xml).iter("disk"):
        found = disk.find("serial")
        target = disk.find("target")
        if found is not None and found.text == serial and target is not None:
            return target.get("dev")
    return None


def convert(src: Path, dest: Path, src_format: str, out_format: str, force_share: bool) -> None:
    """qemu-img convert into dest atomically (temp file, fsync, rename)."""
    args = ["qemu-img", "convert", "-q"] + (["-U"] if force_share else [])
    args += ["-f", src_format, "-O", out_format, str(src)]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        done = subprocess.run([*args, str(tmp)], capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise storage.StorageError(f"qemu-img convert {src}: {done.stderr.strip()}")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


class Operations:
    def __init__(
        self,
        volumes: Volumes,
        servers: Servers,
        images: Images,
        image_data: ImageData,
        blobs: Blobs,
        jobs: Jobs,
        hypervisor: Hypervisor,
        root: Path,
    ) -> None:
        self.volumes = volumes
        self.servers = servers
        self.images = images
        self.image_data = image_data
        self.blobs = blobs
        self.jobs = jobs
        self.hv = hypervisor
        self.root = root
        volumes.submit = self.submit
        jobs.add_reconciler("volumes", self.reconcile)

    def path(self, volume_id: str) -> Path:
        return self.root / f"volume-{volume_id}.qcow2"

    def snapshot_path(self, snapshot_id: str) -> Path:
        return self.root / "snapshots" / f"snapshot-{snapshot_id}.qcow2"

    # -- plumbing ------------------------------------------------------------------------------

    def submit(self, step: str, resource_id: str, args: dict[str, Any]) -> None:
        fn, on_error = {
            "create": (self._create, self._create_failed),
            "delete": (self._delete, self._delete_failed),
            "extend": (self._extend, self._extend_failed),
            "snapshot": (self._snapshot, self._snapshot_failed),
            "delete_snapshot": (self._delete_snapshot, self._delete_snapshot_failed),
            "upload": (self._upload, self._upload_failed),
            "attach": (self._attach, self._attach_failed),
            "detach": (self._detach, self._detach_failed),
        }[step]
        kind = "snapshot" if step == "delete_snapshot" else "volume"

        async def run() -> None:
            await fn(resource_id, args)

        async def failed(exc: BaseException) -> None:
            log.warning("volume job %s %s failed: %s", step, resource_id, exc)
            await on_error(resource_id, args, exc)

        self.jobs.submit(kind, resource_id, step, run, failed)

    def _domain(self, server_id: str | None) -> str | None:
        server = self.servers.row(server_id or "")
        return server.domain_name if server is not None else None

    @contextmanager
    def _quiesced(self, volume: Volume) -> Iterator[bool]:
        """Pause the guest a volume is attached to while its file is copied (a paused guest has
        flushed and writes nothing, so the copy is consistent); yields whether the file is held."""
        domain = self._domain(volume.server_id) if volume.target else None
        power = self.hv.state(domain) if domain else None
        if domain and power == PowerState.RUNNING:
            self.hv.pause(domain)
        try:
            yield power is not None
        finally:
            if domain and power == PowerState.RUNNING:
                self.hv.unpause(domain)

    def _copy_of(self, volume: Volume, dest: Path, fmt: str = "qcow2") -> None:
        """Runs in a worker thread: libvirt and qemu-img calls block."""
        with self._quiesced(volume) as held:
            convert(self.path(volume.id), dest, "qcow2", fmt, held)

    # -- create / delete / extend --------------------------------------------------------------

    async def _create(self, volume_id: str, args: dict[str, Any]) -> None:
        volume = self.volumes.row(volume_id)
        assert volume is not None
        dest = self.path(volume_id)
        if volume.snapshot_id:
            src = self.snapshot_path(volume.snapshot_id)
            await asyncio.to_thread(convert, src, dest, "qcow2", "qcow2", False)
        elif volume.source_volid:
            source = self.volumes.row(volume.source_volid)
            if source is None:
                raise RuntimeError(f"source volume {volume.source_volid} is gone")
            await asyncio.to_thread(self._copy_of, source, dest)
        elif volume.image_id:
            image = self.images.row(volume.image_id)
            if image is None or not image.blob:
                raise RuntimeError(f"image {volume.image_id} has no data")
            fmt = "qcow2" if image.disk_format == "qcow2" else "raw"
            await asyncio.to_thread(convert, self.blobs.path(image.blob), dest, fmt, "qcow2", False)
            if await asyncio.to_thread(storage.virtual_size, dest, "qcow2") > volume.size * GiB:
                dest.unlink(missing_ok=True)
                raise RuntimeError(f"image {image.id} is larger than {volume.size} GB")
        else:
            await asyncio.to_thread(storage.create_blank, dest, volume.size * GiB)
        await asyncio.to_thread(storage.resize, dest, volume.size * GiB, "qcow2")
        self.volumes.set(volume_id, status=Status.AVAILABLE, fault=None)

    async def _create_failed(
        self, volume_id: str, args: dict[str, Any], exc: BaseException
    ) -> None:
        self.volumes.set(volume_id, status=Status.ERROR, fault=str(exc)[:255])

    async def _delete(self, volume_id: str, args: dict[str, Any]) -> None:
        for snap_id in args.get("snapshots", []):
            await asyncio.to_thread(self.snapshot_path(snap_id).unlink, True)
            self.volumes.forget_snapshot(snap_id)
        await asyncio.to_thread(self.path(volume_id).unlink, True)
        self.volumes.forget(volume_id)

    async def _delete_failed(
        self, volume_id: str, args: dict[str, Any], exc: BaseException
    ) -> None:
        self.volumes.set(volume_id, status=Status.ERROR_DELETING, fault=str(exc)[:255])

    async def _extend(self, volume_id: str, args: dict[str, Any]) -> None:
        volume = self.volumes.row(volume_id)
        assert volume is not None
        size = int(args["size"]) * GiB
        domain = self._domain(volume.server_id) if volume.target else None
        power = await asyncio.to_thread(self.hv.state, domain) if domain else None
        if domain and volume.target and power in (PowerState.RUNNING, PowerState.PAUSED):
            # QEMU holds the file: grow it through QEMU, which also tells the guest.
            await asyncio.to_thread(self.hv.block_resize, domain, volume.target, size)
        else:
            await asyncio.to_thread(storage.resize, self.path(volume_id), size, "qcow2")
        self.volumes.set(volume_id, size=int(args["size"]), status=args["was"])

    async def _extend_failed(
        self, volume_id: str, args: dict[str, Any], exc: BaseException
    ) -> None:
        # An attached volume stays usable at its old size; a detached one reports the failure.
        status = Status.IN_USE if args["was"] == Status.IN_USE else Status.ERROR_EXTENDING
        self.volumes.set(volume_id, status=status, fault=str(exc)[:255])

    # -- snapshots and images ------------------------------------------------------------------

    async def _snapshot(self, volume_id: str, args: dict[str, Any]) -> None:
        volume = self.volumes.row(volume_id)
        assert volume is not None
        await asyncio.to_thread(self._copy_of, volume, self.snapshot_path(args["snapshot_id"]))
        self.volumes.set_snapshot(args["snapshot_id"], status=Status.AVAILABLE)

    async def _snapshot_failed(
        self, volume_id: str, args: dict[str, Any], exc: BaseException
    ) -> None:
        self.volumes.set_snapshot(args["snapshot_id"], status=Status.ERROR)

    async def _delete_snapshot(self, snapshot_id: str, args: dict[str, Any]) -> None:
        await asyncio.to_thread(self.snapshot_path(snapshot_id).unlink, True)
        self.volumes.forget_snapshot(snapshot_id)

    async def _delete_snapshot_failed(
        self, snapshot_id: str, args: dict[str, Any], exc: BaseException
    ) -> None:
        self.volumes.set_snapshot(snapshot_id, status=Status.ERROR_DELETING)

    async def _upload(self, volume_id: str, args: dict[str, Any]) -> None:
        volume = self.volumes.row(volume_id)
        assert volume is not None
        tmp = self.root / f".upload-{args['image_id']}.{args['format']}"
        try:
            await asyncio.to_thread(self._copy_of, volume, tmp, args["format"])
            await self.image_data.upload_file(args["image_id"], tmp)
        finally:
            tmp.unlink(missing_ok=True)
        self.volumes.set(volume_id, status=args["was"])

    async def _upload_failed(
        self, volume_id: str, args: dict[str, Any], exc: BaseException
    ) -> None:
        self.volumes.set(volume_id, status=args["was"], fault=str(exc)[:255])

    # -- attach / detach -----------------------------------------------------------------------

    async def _attach(self, volume_id: str, args: dict[str, Any]) -> None:
        volume = self.volumes.row(volume_id)
        assert volume is not None
        domain = self._domain(volume.server_id)
        if domain is None:
            raise RuntimeError(f"server {volume.server_id} is gone")
        xml = await asyncio.to_thread(self.hv.xml, domain, True)
        target = target_with_serial(xml, serial_of(volume_id)) or volume.target or free_target(xml)
        disk = Disk(self.path(volume_id), target, serial_of(volume_id))
        await asyncio.to_thread(self.hv.attach_disk, domain, disk)
        self.volumes.set(volume_id, status=Status.IN_USE, target=target, device=f"/dev/{target}",
                         attached_at=args.get("at"))  # fmt: skip

    async def _attach_failed(
        self, volume_id: str, args: dict[str, Any], exc: BaseException
    ) -> None:
        self.volumes.set(volume_id, status=Status.AVAILABLE, server_id=None, attachment_id=None,
                         device=None, target=None, attached_at=None, fault=str(exc)[:255])  # fmt: skip

    async def _detach(self, volume_id: str, args: dict[str, Any]) -> None:
        volume = self.volumes.row(volume_id)
        assert volume is not None
        domain = self._domain(volume.server_id)
        if (
            domain is not None
            and volume.target
            and await asyncio.to_thread(self.hv.state, domain) is not None
        ):
            await asyncio.to_thread(self.hv.detach_disk, domain, volume.target)
        self.release(volume_id)

    async def _detach_failed(
        self, volume_id: str, args: dict[str, Any], exc: BaseException
    ) -> None:
        self.volumes.set(volume_id, status=Status.IN_USE, fault=str(exc)[:255])

    def release(self, volume_id: str) -> None:
        self.volumes.set(volume_id, status=Status.AVAILABLE, server_id=None, attachment_id=None,
                         device=None, target=None, attached_at=None, delete_on_termination=0)  # fmt: skip

    def server_deleted(self, server_id: str) -> None:
        """The server's domain is gone: its volumes are free again (or deleted, if asked at boot)."""
        for volume in self.volumes.attached_to(server_id):
            self.release(volume.id)
            if volume.delete_on_termination:
                self.volumes.set(volume.id, status=Status.DELETING)
                self.submit("delete", volume.id, {"snapshots": []})

    # -- start-up repair -----------------------------------------------------------------------

    async def reconcile(self) -> None:
        for volume in self.volumes.rows_where("status NOT IN ('available', 'in-use', 'error')", []):
            status = volume.status
            if status == Status.CREATING:
                self.submit("create", volume.id, {})
            elif status == Status.DELETING:
                snaps = self.volumes.snapshot_rows_where("volume_id = ?", [volume.id])
                self.submit("delete", volume.id, {"snapshots": [s.id for s in snaps]})
            elif status in (Status.ATTACHING, Status.DETACHING, Status.RESERVED):
                await self._settle_attachment(volume)
            elif status in (Status.EXTENDING, Status.UPLOADING):
                size = await asyncio.to_thread(storage.virtual_size, self.path(volume.id), "qcow2")
                self.volumes.set(volume.id, size=max(volume.size, -(-size // GiB)),
                                 status=Status.IN_USE if volume.server_id else Status.AVAILABLE)  # fmt: skip
            log.info("volume %s was %s when Nube stopped: repaired", volume.id, status)
        for snap in self.volumes.snapshot_rows_where("status IN ('creating', 'deleting')", []):
            if snap.status == Status.DELETING:
                self.submit("delete_snapshot", snap.id, {})
            else:  # the copy may be partial: make it again
                self.submit("snapshot", snap.volume_id, {"snapshot_id": snap.id})

    async def _settle_attachment(self, volume: Volume) -> None:
        """In-use if the server's domain holds the disk, else available."""
        domain = self._domain(volume.server_id)
        target = None
        if domain is not None and await asyncio.to_thread(self.hv.state, domain) is not None:
            xml = await asyncio.to_thread(self.hv.xml, domain, True)
            target = target_with_serial(xml, serial_of(volume.id))
        if target is None:
            self.release(volume.id)
        else:
            self.volumes.set(
                volume.id, status=Status.IN_USE, target=target, device=f"/dev/{target}"
            )

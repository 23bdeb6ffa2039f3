"""Image inspection driver: what an uploaded file really is, told by `qemu-img info` in a bounded
subprocess, and the checks that keep hostile images out (OSSA-2022-002, OSSA-2024-001: a qcow2/vmdk
that names a backing file, data file or extent on the host would disclose host files once booted)."""

from __future__ import annotations

import asyncio
import json
import resource
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Glance disk_format -> the format qemu-img must detect.
QEMU_FORMAT = {
    "qcow2": "qcow2",
    "raw": "raw",
    "vmdk": "vmdk",
    "vhd": "vpc",
    "vhdx": "vhdx",
    "vdi": "vdi",
    "ploop": "parallels",
    "iso": "raw",
    "ami": "raw",
    "aki": "raw",
    "ari": "raw",
}
SAFE_VMDK_TYPES = ("monolithicSparse", "streamOptimized")
ISO_MAGIC_OFFSETS = (0x8001, 0x8801, 0x9001)


class ImageRejected(Exception):
    """The bytes are not a safe image of the declared format; the message says why."""


@dataclass(frozen=True, slots=True)
class Inspection:
    format: str
    virtual_size: int


def _limits(memory: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))


async def qemu_img_info(path: Path, seconds: float = 30, memory: int = 1 << 30) -> dict[str, Any]:
    """`qemu-img info --output=json` with an address-space cap, a CPU cap and a wall-clock timeout."""
    with tempfile.TemporaryDirectory(prefix="nube-inspect-") as cwd:
        proc = await asyncio.create_subprocess_exec(
            "qemu-img",
            "info",
            "--output=json",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            preexec_fn=lambda: _limits(memory, int(seconds)),
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), seconds)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ImageRejected(f"Image inspection did not finish in {seconds:.0f} s.") from None
    if proc.returncode != 0:
        reason = err.decode(errors="replace").strip().splitlines()[-1:] or ["unknown error"]
        raise ImageRejected(f"Image data could not be inspected: {reason[0]}")
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise ImageRejected("Image inspection produced unreadable output.") from None


def _is_iso(path: Path) -> bool:
    with path.open("rb") as fh:
        for offset in ISO_MAGIC_OFFSETS:
            fh.seek(offset)
            if fh.read(5) == b"CD001":
                return True
    return False


def check(info: dict[str, Any], disk_format: str, path: Path) -> Inspection:
    """Raise ImageRejected unless `info` describes a self-contained image of `disk_format`."""
    expected = QEMU_FORMAT.get(disk_format)
    if expected is None:
        raise ImageRejected(
            f"Disk format {disk_format} cannot be inspected, so it is not accepted."
        )
    found = info.get("format")
    if found != expected:
        raise ImageRejected(
            f"Image data is in {found} format, but its disk_format is {disk_format}."
        )
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ImageRejected("Images with a backing file are not allowed.")
    data = (info.get("format-specific") or {}).get("data") or {}
    if found == "qcow2" and data.get("data-file"):
        raise ImageRejected("qcow2 images with an external data file are not allowed.")
    if found == "vmdk":
        if data.get("create-type") not in SAFE_VMDK_TYPES:
            raise ImageRejected(
                f"VMDK subformat {data.get('create-type')} is not allowed "
                f"(only {', '.join(SAFE_VMDK_TYPES)})."
            )
        for extent in data.get("extents") or []:
            if Path(extent.get("filename", "")).resolve() != path.resolve():
                raise ImageRejected(
                    "VMDK images whose extents live in other files are not allowed."
                )
    if disk_format == "iso" and not _is_iso(path):
        raise ImageRejected("Image data is not an ISO 9660 image, but its disk_format is iso.")
    return Inspection(found, int(info.get("virtual-size") or 0))


async def inspect(path: Path, disk_format: str) -> Inspection:
    info = await qemu_img_info(path)
    return await asyncio.to_thread(check, info, disk_format, path)

"""Which cores take the interrupts of the disk under a path, read from /sys and /proc.

A benchmark that pins a server to one core and its client to another means each to pay for its own
work. A server that fsyncs makes the disk raise an interrupt per completed write and flush, and the
kernel handles it on the core the interrupt is routed to, whatever runs there: if that is the
client's core, the client pays for the server's durability. On a machine of its own the server's
disk interrupts land on the server's cores, so the server belongs on the core that takes them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def disk_device(path: Path) -> tuple[str, Path] | None:
    """The name and /sys device of the whole disk holding `path` (None: not a block device)."""
    st = os.stat(path)
    block = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if not block.exists():
        return None  # tmpfs, overlay and the like
    block = block.resolve()
    if (block / "partition").exists():
        block = block.parent
    device = block / "device"
    return (block.name, device.resolve()) if device.exists() else None


def queue_irqs(device: Path, interrupts: str) -> list[int]:
    """Interrupts of the disk's request queues: virtio-blk names them virtioN-req.K (or
    virtioN-request), NVMe nvmeNqK. Other controllers (AHCI, SCSI) share their interrupts
    among several disks and are not matched."""
    name = re.escape(device.name)
    queue = re.compile(rf"{name}-req(uest|\.\d+)?|{name}q\d+")
    irqs = []
    for line in interrupts.splitlines():
        fields = line.split()
        if fields and fields[0].rstrip(":").isdigit() and queue.fullmatch(fields[-1]):
            irqs.append(int(fields[0].rstrip(":")))
    return irqs


def cpu_list(text: str) -> set[int]:
    """'0-2,5' -> {0, 1, 2, 5}."""
    cores: set[int] = set()
    for part in text.strip().split(","):
        if part:
            low, _, high = part.partition("-")
            cores.update(range(int(low), int(high or low) + 1))
    return cores


def disk_cores(path: Path) -> tuple[str, set[int]]:
    """The name of `path`'s disk and the cores its interrupts are routed to now (empty when
    unknown)."""
    disk = disk_device(path)
    if disk is None:
        return "no disk", set()
    name, device = disk
    cores: set[int] = set()
    for irq in queue_irqs(device, Path("/proc/interrupts").read_text()):
        for kind in ("effective_affinity_list", "smp_affinity_list"):
            routed = Path(f"/proc/irq/{irq}/{kind}")
            if routed.exists():
                cores |= cpu_list(routed.read_text())
                break
    return name, cores


def server_and_client(path: Path) -> tuple[int, int, str]:
    """(server core, client core, why): the server on the one core that takes the disk's
    interrupts, if there is exactly one; else core 0. The client on the lowest other core."""
    usable = sorted(os.sched_getaffinity(0))
    disk, cores = disk_cores(path)
    taking = cores & set(usable)
    if len(taking) == 1 and len(usable) > 1:
        server = taking.pop()
        why = f"core {server} takes every interrupt of the disk ({disk}) that holds the data"
    else:
        server = usable[0]
        why = f"the interrupts of the disk ({disk}) go to {sorted(taking) or 'no core found'}"
    client = next(c for c in usable if c != server) if len(usable) > 1 else server
    return server, client, why

"""Instance disk files through qemu-img: cached bases, qcow2 overlays, resize, flatten. Blocking.

Every file appears atomically (written under a temporary name in the same directory, then renamed),
so a crash leaves either no file or a whole one. Formats are always given to qemu-img explicitly
when known: probing a guest-writable raw file is how a guest gets its host to read other files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

QEMU_IMG = "qemu-img"
INFO_TIMEOUT = 60
CONVERT_TIMEOUT = 3600  # a large image on a busy disk; qemu-img convert is about 1.6 s per GiB here

# Glance disk_format -> qemu-img format name.
SOURCE_FORMATS = {
    "qcow2": "qcow2",
    "raw": "raw",
    "vmdk": "vmdk",
    "vdi": "vdi",
    "vhd": "vpc",
    "vhdx": "vhdx",
}
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class StorageError(Exception):
    pass


def _run(args: Sequence[str], timeout: float) -> str:
    cmd = [QEMU_IMG, *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise StorageError(f"{' '.join(cmd)}: no result after {timeout:.0f}s") from err
    except OSError as err:
        raise StorageError(f"cannot run {QEMU_IMG}: {err} (apt-get install qemu-utils)") from err
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise StorageError(f"{' '.join(cmd)}: {detail}")
    return done.stdout


@contextmanager
def _atomic(dest: Path) -> Iterator[Path]:
    """A temporary path beside dest; renamed onto dest (replacing it) if the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, dest)
        _fsync(dest.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def info(path: Path, fmt: str | None = None) -> dict[str, Any]:
    """`qemu-img info` as a dict. -U: also for a file a running QEMU holds locked."""
    args = ["info", "--output=json", "-U"]
    if fmt is not None:
        args += ["-f", fmt]
    try:
        result: dict[str, Any] = json.loads(_run([*args, str(path)], INFO_TIMEOUT))
    except json.JSONDecodeError as err:
        raise StorageError(f"qemu-img info {path}: unreadable output: {err}") from err
    return result


def virtual_size(path: Path, fmt: str | None = None) -> int:
    """The disk size the guest sees, in bytes. Pass fmt for files a guest can write raw."""
    return int(info(path, fmt)["virtual-size"])


def ensure_base(source: Path, base_dir: Path, key: str, source_format: str) -> Path:
    """A cached, read-only, standalone qcow2 copy of an image blob: base_dir/<key>.qcow2.

    Made once (converted from any format qemu-img reads, always with the declared format, never
    probed); later calls return the cached file. Concurrent first calls each convert, and the
    first to finish wins; the file at the returned path is never replaced."""
    if not _KEY.match(key):
        raise StorageError(f"bad base image key {key!r}")
    fmt = SOURCE_FORMATS.get(source_format)
    if fmt is None:
        raise StorageError(f"cannot make a disk from a {source_format!r} image")
    base = base_dir / f"{key}.qcow2"
    if base.exists():
        return base
    base_dir.mkdir(parents=True, exist_ok=True)
    tmp = base_dir / f".{key}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        _run(["convert", "-q", "-f", fmt, "-O", "qcow2", str(source), str(tmp)], CONVERT_TIMEOUT)
        tmp.chmod(0o444)
        _fsync(tmp)
        try:
            os.link(tmp, base)  # fails if another call got there first: keep theirs
        except FileExistsError:
            pass
        _fsync(base_dir)
    finally:
        tmp.unlink(missing_ok=True)
    return base


def create_overlay(base: Path, dest: Path, size_bytes: int | None) -> None:
    """A qcow2 overlay backed by base (qcow2), grown to size_bytes if that is larger than base."""
    size = virtual_size(base, "qcow2")
    if size_bytes is not None and size_bytes > size:
        size = size_bytes
    with _atomic(dest) as tmp:
        backing = str(base.resolve())
        _run(
            ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, str(tmp), str(size)],
            INFO_TIMEOUT,
        )


def create_blank(dest: Path, size_bytes: int) -> None:
    """An empty qcow2 disk (ephemeral or swap disks, volumes)."""
    with _atomic(dest) as tmp:
        _run(["create", "-q", "-f", "qcow2", str(tmp), str(size_bytes)], INFO_TIMEOUT)


def resize(path: Path, size_bytes: int, fmt: str | None = None) -> None:
    """Grow a disk that no running domain holds (else Hypervisor.block_resize); never shrinks."""
    current = info(path, fmt)
    size = int(current["virtual-size"])
    if size_bytes < size:
        raise StorageError(f"{path}: cannot shrink from {size} to {size_bytes} bytes")
    if size_bytes == size:
        return
    _run(["resize", "-q", "-f", str(current["format"]), str(path), str(size_bytes)], INFO_TIMEOUT)


def flatten(src: Path, dest: Path, fmt: str | None = None, force_share: bool = False) -> None:
    """A standalone qcow2 of src with its backing chain merged in (a snapshot for createImage).

    A running domain's disk is locked by QEMU: pause the domain first (pausing flushes its disk
    writes) and pass force_share=True, then unpause."""
    args = ["convert", "-q"]
    if force_share:
        args.append("-U")
    args += ["-f", fmt or str(info(src)["format"]), "-O", "qcow2", str(src)]
    with _atomic(dest) as tmp:
        _run([*args, str(tmp)], CONVERT_TIMEOUT)

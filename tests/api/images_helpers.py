"""Image files for tests: real qcow2/raw/vmdk made with qemu-img, and hostile ones."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path


def qcow2(path: Path, mib: int = 2) -> Path:
    """A qcow2 with real random content (so checksums mean something)."""
    raw = path.with_suffix(".raw")
    raw.write_bytes(os.urandom(mib * 1024 * 1024))
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True
    )
    raw.unlink()
    return path


def random_raw(path: Path, mib: int = 1) -> Path:
    path.write_bytes(os.urandom(mib * 1024 * 1024))
    return path


def qcow2_backed_by(path: Path, backing: str) -> Path:
    subprocess.run(
        ["qemu-img", "create", "-f", "qcow2", "-b", backing, "-F", "raw", "-u", str(path), "1M"],
        check=True,
        capture_output=True,
    )
    return path


def qcow2_with_data_file(path: Path, data_file: str) -> Path:
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-f",
            "qcow2",
            "-o",
            f"data_file={data_file},data_file_raw=on",
            str(path),
            "1M",
        ],
        check=True,
        capture_output=True,
    )
    return path


def vmdk_with_external_extent(path: Path, extent: str) -> Path:
    path.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        'createType="monolithicFlat"\n\n'
        f'RW 8 FLAT "{extent}" 0\n\n'
        'ddb.virtualHWVersion = "4"\nddb.geometry.cylinders = "1"\n'
        'ddb.geometry.heads = "16"\nddb.geometry.sectors = "63"\nddb.adapterType = "ide"\n'
    )
    return path


def sha512(path: Path) -> str:
    h = hashlib.sha512()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

"""The config drive: an ISO 9660 image labelled config-2 with OpenStack metadata, as Nova writes it.

Layout (nova/api/metadata/base.py, nova/virt/configdrive.py): openstack/<version>/meta_data.json
and user_data for every version; vendor_data.json from 2013-10-17, network_data.json from
2015-10-15, vendor_data2.json from 2016-10-06; `latest` holds everything. cloud-init picks the
newest version it knows, so the dated directories matter as much as `latest`. Built with xorriso
in genisoimage mode, with the options Nova passes to genisoimage (Rock Ridge and Joliet).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LABEL = "config-2"
XORRISO = "xorriso"
TIMEOUT = 60

# (version, has vendor_data.json, has network_data.json, has vendor_data2.json)
VERSIONS = (
    ("2012-08-10", False, False, False),
    ("2013-04-04", False, False, False),
    ("2013-10-17", True, False, False),
    ("2015-10-15", True, True, False),
    ("2016-06-30", True, True, False),
    ("2016-10-06", True, True, True),
    ("2017-02-22", True, True, True),
    ("2018-08-27", True, True, True),
    ("2020-10-14", True, True, True),
    ("latest", True, True, True),
)


class ConfigDriveError(Exception):
    pass


def _write_tree(
    root: Path,
    meta_data: Mapping[str, Any],
    user_data: bytes | None,
    network_data: Mapping[str, Any],
    vendor_data: Mapping[str, Any] | None,
) -> None:
    def dump(value: Mapping[str, Any]) -> bytes:
        return json.dumps(value).encode()

    for version, has_vendor, has_network, has_vendor2 in VERSIONS:
        folder = root / "openstack" / version
        folder.mkdir(parents=True)
        (folder / "meta_data.json").write_bytes(dump(meta_data))
        if user_data is not None:
            (folder / "user_data").write_bytes(user_data)
        if has_vendor:
            (folder / "vendor_data.json").write_bytes(dump(vendor_data or {}))
        if has_network:
            (folder / "network_data.json").write_bytes(dump(network_data))
        if has_vendor2:
            (folder / "vendor_data2.json").write_bytes(dump({}))


def build_config_drive(
    dest: Path,
    meta_data: Mapping[str, Any],
    user_data: bytes | None,
    network_data: Mapping[str, Any],
    vendor_data: Mapping[str, Any] | None = None,
) -> None:
    """Write the ISO to dest atomically (temporary file beside it, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with tempfile.TemporaryDirectory(prefix="nube-configdrive-") as tree:
            _write_tree(Path(tree), meta_data, user_data, network_data, vendor_data)
            cmd = [
                XORRISO, "-as", "genisoimage", "-o", str(tmp),
                "-ldots", "-allow-lowercase", "-allow-multidot", "-l",
                "-publisher", "Nube", "-quiet", "-J", "-r", "-V", LABEL, tree,
            ]  # fmt: skip
            try:
                done = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False
                )
            except OSError as err:
                raise ConfigDriveError(
                    f"cannot run {XORRISO}: {err} (apt-get install xorriso)"
                ) from err
            except subprocess.TimeoutExpired as err:
                raise ConfigDriveError(f"xorriso: no result after {TIMEOUT}s") from err
            if done.returncode != 0 or not tmp.exists():
                raise ConfigDriveError(f"xorriso failed: {(done.stderr or done.stdout).strip()}")
        tmp.chmod(0o644)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)

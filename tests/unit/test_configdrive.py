"""The config drive is a real ISO 9660 image: build one with xorriso and read it back with xorriso."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.compute.configdrive import build_config_drive

if shutil.which("xorriso") is None:
    pytest.skip("xorriso is missing: apt-get install xorriso", allow_module_level=True)

META = {"uuid": "5b2f7c1e-3a44-4a4e-9b1a-0c9d7e2f1a11", "hostname": "hv1", "name": "hv1"}
NETWORK = {"links": [], "networks": [], "services": []}
USER_DATA = b"#!/bin/sh\necho hello \xe2\x9c\x93\n"


def extract(iso: Path, dest: Path) -> Path:
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(dest)],
        check=True,
        capture_output=True,
    )
    return dest


def volume_id(iso: Path) -> str:
    # The primary volume descriptor is sector 16; its volume identifier is bytes 40-71.
    with iso.open("rb") as fh:
        fh.seek(16 * 2048)
        pvd = fh.read(2048)
    assert pvd[1:6] == b"CD001"
    return pvd[40:72].decode("ascii").rstrip()


@pytest.fixture
def drive(tmp_path: Path) -> Path:
    iso = tmp_path / "instance" / "config.iso"
    build_config_drive(iso, META, USER_DATA, NETWORK, {"vendor": "nube"})
    return iso


def test_the_volume_label_is_config_2(drive: Path) -> None:
    assert volume_id(drive) == "config-2"


def test_latest_holds_every_file_with_its_content(drive: Path, tmp_path: Path) -> None:
    latest = extract(drive, tmp_path / "out") / "openstack" / "latest"
    assert json.loads((latest / "meta_data.json").read_text()) == META
    assert (latest / "user_data").read_bytes() == USER_DATA
    assert json.loads((latest / "network_data.json").read_text()) == NETWORK
    assert json.loads((latest / "vendor_data.json").read_text()) == {"vendor": "nube"}
    assert json.loads((latest / "vendor_data2.json").read_text()) == {}


def test_the_first_dated_version_holds_meta_data_and_user_data(drive: Path, tmp_path: Path) -> None:
    folsom = extract(drive, tmp_path / "out") / "openstack" / "2012-08-10"
    assert sorted(p.name for p in folsom.iterdir()) == ["meta_data.json", "user_data"]
    assert json.loads((folsom / "meta_data.json").read_text()) == META


def test_network_data_appears_from_2015_10_15_as_in_nova(drive: Path, tmp_path: Path) -> None:
    openstack = extract(drive, tmp_path / "out") / "openstack"
    assert not (openstack / "2013-10-17" / "network_data.json").exists()
    assert (openstack / "2015-10-15" / "network_data.json").exists()


def test_names_keep_their_case_and_dots(drive: Path, tmp_path: Path) -> None:
    # Rock Ridge/Joliet: without them ISO 9660 level 1 would show META_DAT.JSO.
    listing = subprocess.run(
        ["xorriso", "-indev", str(drive), "-ls", "/openstack/latest/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "'meta_data.json'" in listing
    assert "'vendor_data2.json'" in listing


def test_without_user_data_there_is_no_user_data_file(tmp_path: Path) -> None:
    iso = tmp_path / "config.iso"
    build_config_drive(iso, META, None, NETWORK)
    latest = extract(iso, tmp_path / "out") / "openstack" / "latest"
    assert not (latest / "user_data").exists()
    assert json.loads((latest / "vendor_data.json").read_text()) == {}


def test_building_again_replaces_the_drive_and_leaves_no_temporary_files(drive: Path) -> None:
    build_config_drive(drive, {**META, "hostname": "hv2"}, None, NETWORK)
    assert [p.name for p in drive.parent.iterdir()] == ["config.iso"]
    out = drive.parent.parent / "out"
    latest = extract(drive, out) / "openstack" / "latest"
    assert json.loads((latest / "meta_data.json").read_text())["hostname"] == "hv2"

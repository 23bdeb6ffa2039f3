"""The compute drivers against real libvirt (qemu:///system) and the real nube-tiny guest, under TCG.

One domain is created (direct kernel boot from a qcow2 overlay, with a config drive) and taken
through the whole life cycle by the tests below, in file order; a second boots from its disk
alone. Domains carry a per-run prefix and every one, with every file, is removed at the end.
No NICs: the guests have no network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

if os.geteuid() != 0:
    pytest.skip(
        "tests/host need root (libvirt's qemu:///system): run them with sudo ./tests/run.sh",
        allow_module_level=True,
    )

from appliance.compute import storage
from appliance.compute.configdrive import build_config_drive
from appliance.compute.hypervisor import (
    Disk,
    DomainSpec,
    Hypervisor,
    HypervisorError,
    PowerState,
)

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "images" / "build-nube-tiny.sh"
CACHE = Path(os.environ.get("NUBE_IMAGE_CACHE", "/var/cache/nube/images"))
PREFIX = f"nubetest-hv{uuid.uuid4().hex[:6]}-"
BOOT_TIMEOUT = 90  # to READY: ~5-10 s through libvirt on an idle machine, several times that busy
EVENT_TIMEOUT = 60
READY = r"^NUBE-TINY READY hostname={host} "


@pytest.fixture(scope="module")
def hv() -> Iterator[Hypervisor]:
    if shutil.which("virsh") is None:
        pytest.skip("libvirt is not installed: apt-get install libvirt-daemon-system")
    hv = Hypervisor(prefix=PREFIX)
    try:
        hv.domains()
    except HypervisorError as err:
        pytest.skip(f"libvirt is unavailable ({err}); start it with installer/libvirt.sh")
    print(f"domain type {hv.domain_type}, prefix {PREFIX}")
    yield hv
    for name in hv.domains():
        hv.undefine(name)
    assert hv.domains() == {}
    hv.close()
    for log in Path("/var/log/libvirt/qemu").glob(f"{PREFIX}*.log"):  # QEMU's stderr, by libvirt
        log.unlink()


@dataclass(frozen=True)
class Image:
    dir: Path
    cmdline: str


@pytest.fixture(scope="module")
def image() -> Image:
    result = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        pytest.skip(f"cannot build nube-tiny ({BUILD} exited {result.returncode}): {result.stderr}")
    path = (CACHE / "nube-tiny").resolve()
    manifest = json.loads((path / "manifest.json").read_text())
    return Image(path, manifest["kernel_cmdline"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("hypervisor")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Console:
    """The serial log libvirt's virtlogd appends to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def text(self) -> str:
        try:
            return self.path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self) -> int:
        return len(self.text())

    def wait_for(self, pattern: str, since: int = 0, timeout: float = EVENT_TIMEOUT) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if match := re.search(pattern, text[since:], re.MULTILINE):
                return match
            if time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} on the console in {timeout} s:\n{text[-3000:]}")
            time.sleep(0.2)

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.text(), re.MULTILINE))


@dataclass(frozen=True)
class Guest:
    spec: DomainSpec
    console: Console
    boot_seconds: float

    @property
    def name(self) -> str:
        return self.spec.name


def make_spec(image: Image, workdir: Path, host: str, direct_boot: bool) -> DomainSpec:
    server_id = str(uuid.uuid4())
    here = workdir / server_id
    base = storage.ensure_base(image.dir / "disk.qcow2", workdir / "_base", "nube-tiny", "qcow2")
    storage.create_overlay(base, here / "disk.qcow2", 64 * 2**20)
    build_config_drive(here / "config.iso", {"uuid": server_id, "hostname": host}, None, {})
    kernel: dict[str, object] = {}
    if direct_boot:
        kernel = {
            "kernel": image.dir / "vmlinux",
            "initrd": image.dir / "initrd.img",
            "cmdline": image.cmdline,
        }
    return DomainSpec(
        name=f"{PREFIX}{server_id}",
        uuid=server_id,
        vcpus=1,
        memory_mib=128,
        disks=(
            Disk(here / "disk.qcow2", "vda", server_id[:20]),
            Disk(here / "config.iso", "hdd", "", "cdrom", "ide", True, "raw"),
        ),
        serial_log=here / "console.log",
        metadata={"server_id": server_id, "purpose": "test"},
        **kernel,  # type: ignore[arg-type]
    )


def boot(hv: Hypervisor, spec: DomainSpec, host: str) -> Guest:
    console = Console(spec.serial_log)
    started = time.monotonic()
    hv.create(spec)
    console.wait_for(READY.format(host=host), timeout=BOOT_TIMEOUT)
    seconds = time.monotonic() - started
    print(f"{spec.name}: READY {seconds:.1f} s after create()")
    return Guest(spec, console, seconds)


@pytest.fixture(scope="module")
def guest(hv: Hypervisor, image: Image, workdir: Path) -> Guest:
    return boot(hv, make_spec(image, workdir, "hv1", direct_boot=True), "hv1")


def wait_state(hv: Hypervisor, name: str, want: PowerState | None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (state := hv.state(name)) != want:
        assert time.monotonic() < deadline, f"{name} is {state!r}, not {want!r}"
        time.sleep(0.2)


# -- the life of one domain, in order -------------------------------------------------------------


def test_create_boots_the_guest_with_its_config_drive_hostname(guest: Guest) -> None:
    assert guest.console.count(READY.format(host="hv1")) == 1
    root = rf"^NUBE-TINY BLOCK \+ vda size=131072 serial={guest.spec.uuid[:20]}\s*$"
    assert guest.console.count(root) == 1


def test_a_booted_domain_is_running_and_listed(hv: Hypervisor, guest: Guest) -> None:
    assert hv.state(guest.name) is PowerState.RUNNING
    assert hv.domains()[guest.name] is PowerState.RUNNING


def test_metadata_reads_back(hv: Hypervisor, guest: Guest) -> None:
    assert hv.metadata(guest.name) == {"server_id": guest.spec.uuid, "purpose": "test"}


def listening_addresses(port: int) -> set[str]:
    """Local addresses of TCP listeners on port, as /proc/net/tcp{,6} spell them (hex)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            address, _, hex_port = fields[1].rpartition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_vnc_and_its_websocket_answer_on_loopback_only(hv: Hypervisor, guest: Guest) -> None:
    ports = hv.vnc_ports(guest.name)
    assert ports is not None
    vnc, websocket = ports
    assert listening_addresses(vnc) == listening_addresses(websocket) == {"0100007F"}
    with socket.create_connection(("127.0.0.1", vnc), timeout=10) as sock:
        assert sock.recv(12) == b"RFB 003.008\n"
    with socket.create_connection(("127.0.0.1", websocket), timeout=10) as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: binary\r\n\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 101")


def test_a_hot_plugged_disk_shows_its_serial_in_the_guest(
    hv: Hypervisor, guest: Guest, workdir: Path
) -> None:
    volume = workdir / "vol-abc.qcow2"
    storage.create_blank(volume, 32 * 2**20)
    since = guest.console.mark()
    hv.attach_disk(guest.name, Disk(volume, "vdb", "vol-abc"))
    guest.console.wait_for(r"^NUBE-TINY BLOCK \+ vdb size=65536 serial=vol-abc\s*$", since)
    assert "vol-abc.qcow2" in hv.xml(guest.name, inactive=True)


def test_attaching_the_same_disk_again_does_nothing(
    hv: Hypervisor, guest: Guest, workdir: Path
) -> None:
    hv.attach_disk(guest.name, Disk(workdir / "vol-abc.qcow2", "vdb", "vol-abc"))
    assert hv.xml(guest.name).count("vol-abc.qcow2") == 1


def test_a_detached_disk_leaves_the_guest_and_the_definition(hv: Hypervisor, guest: Guest) -> None:
    since = guest.console.mark()
    hv.detach_disk(guest.name, "vdb")
    guest.console.wait_for(r"^NUBE-TINY BLOCK - vdb\s*$", since)
    assert "vol-abc" not in hv.xml(guest.name)
    assert "vol-abc" not in hv.xml(guest.name, inactive=True)
    hv.detach_disk(guest.name, "vdb")  # absent: nothing to do


def test_pause_and_unpause(hv: Hypervisor, guest: Guest) -> None:
    hv.pause(guest.name)
    assert hv.state(guest.name) is PowerState.PAUSED
    hv.unpause(guest.name)
    assert hv.state(guest.name) is PowerState.RUNNING


def test_shutdown_powers_off_through_the_acpi_button(hv: Hypervisor, guest: Guest) -> None:
    started = time.monotonic()
    hv.shutdown(guest.name, timeout=BOOT_TIMEOUT)
    seconds = time.monotonic() - started
    print(f"ACPI power off took {seconds:.1f} s")
    assert hv.state(guest.name) is PowerState.SHUTDOWN
    assert seconds < BOOT_TIMEOUT - 5, "the guest ignored the button and was destroyed"
    assert hv.vnc_ports(guest.name) is None


def test_redefine_replaces_the_definition_of_a_shut_off_domain(
    hv: Hypervisor, guest: Guest
) -> None:
    hv.redefine(replace(guest.spec, memory_mib=160, metadata={"resized": "yes"}))
    assert "<memory unit='KiB'>163840</memory>" in hv.xml(guest.name, inactive=True)
    assert hv.metadata(guest.name) == {"resized": "yes"}


def test_start_boots_again_and_the_log_keeps_the_first_boot(hv: Hypervisor, guest: Guest) -> None:
    since = guest.console.mark()
    started = time.monotonic()
    hv.start(guest.name)
    guest.console.wait_for(READY.format(host="hv1"), since, BOOT_TIMEOUT)
    print(f"start: READY after {time.monotonic() - started:.1f} s")
    assert guest.console.count(READY.format(host="hv1")) == 2
    assert hv.state(guest.name) is PowerState.RUNNING


def test_redefine_refuses_a_running_domain(hv: Hypervisor, guest: Guest) -> None:
    with pytest.raises(HypervisorError, match="running"):
        hv.redefine(guest.spec)


def test_soft_reboot_powers_off_and_boots_again(hv: Hypervisor, guest: Guest) -> None:
    since = guest.console.mark()
    hv.reboot(guest.name, hard=False, timeout=BOOT_TIMEOUT)
    guest.console.wait_for(READY.format(host="hv1"), since, BOOT_TIMEOUT)
    assert hv.state(guest.name) is PowerState.RUNNING


def test_hard_reboot_boots_again(hv: Hypervisor, guest: Guest) -> None:
    since = guest.console.mark()
    hv.reboot(guest.name, hard=True)
    guest.console.wait_for(READY.format(host="hv1"), since, BOOT_TIMEOUT)
    assert hv.state(guest.name) is PowerState.RUNNING


def test_suspend_saves_the_memory_and_resume_restores_it(
    hv: Hypervisor, guest: Guest, workdir: Path
) -> None:
    readies = guest.console.count(READY.format(host="hv1"))
    hv.suspend(guest.name)
    assert hv.state(guest.name) is PowerState.SUSPENDED
    assert hv.domains()[guest.name] is PowerState.SUSPENDED
    hv.resume(guest.name)
    assert hv.state(guest.name) is PowerState.RUNNING
    # Restored, not rebooted: no new READY, and the running watcher sees a hot-plug.
    since = guest.console.mark()
    hv.attach_disk(guest.name, Disk(workdir / "vol-abc.qcow2", "vdc", "vol-again"))
    guest.console.wait_for(r"^NUBE-TINY BLOCK \+ vd[a-z] size=65536 serial=vol-again", since)
    assert guest.console.count(READY.format(host="hv1")) == readies


def test_destroy_is_a_hard_power_off_and_repeats_harmlessly(hv: Hypervisor, guest: Guest) -> None:
    hv.destroy(guest.name)
    assert hv.state(guest.name) is PowerState.SHUTDOWN
    hv.destroy(guest.name)


def test_undefine_leaves_no_domain(hv: Hypervisor, guest: Guest) -> None:
    hv.start(guest.name)
    hv.suspend(guest.name)  # a managed save goes too
    hv.undefine(guest.name)
    assert hv.state(guest.name) is None
    assert guest.name not in hv.domains()
    hv.undefine(guest.name)  # absent: nothing to do
    shutil.rmtree(guest.spec.serial_log.parent)


# -- other domains ------------------------------------------------------------------------------


def test_a_guest_boots_from_its_disk_alone(hv: Hypervisor, image: Image, workdir: Path) -> None:
    spec = make_spec(image, workdir, "hv2", direct_boot=False)
    try:
        disk_guest = boot(hv, spec, "hv2")
        assert hv.state(spec.name) is PowerState.RUNNING
        assert disk_guest.boot_seconds < BOOT_TIMEOUT
    finally:
        hv.undefine(spec.name)
    assert hv.state(spec.name) is None


def test_a_missing_disk_file_fails_and_leaves_nothing_defined(
    hv: Hypervisor, image: Image, workdir: Path
) -> None:
    spec = make_spec(image, workdir, "hv3", direct_boot=True)
    missing = replace(spec.disks[0], path=workdir / "no-such-disk.qcow2")
    with pytest.raises(HypervisorError, match="no-such-disk"):
        hv.create(replace(spec, disks=(missing, *spec.disks[1:])))
    assert hv.state(spec.name) is None
    assert spec.name not in hv.domains()


def test_domains_without_the_prefix_are_refused(hv: Hypervisor) -> None:
    with pytest.raises(HypervisorError, match="refusing"):
        hv.undefine("someone-elses-domain")


def test_operations_on_an_absent_domain_say_so(hv: Hypervisor) -> None:
    with pytest.raises(HypervisorError, match="no such domain"):
        hv.start(f"{PREFIX}{uuid.uuid4()}")


# -- storage (qemu-img) ---------------------------------------------------------------------------


def test_a_raw_image_becomes_a_cached_readonly_qcow2_base(workdir: Path) -> None:
    raw = workdir / "blob.raw"
    raw.write_bytes(b"\x01" * 2**20)
    base = storage.ensure_base(raw, workdir / "bases", "blob1", "raw")
    info = storage.info(base, "qcow2")
    assert (info["format"], info["virtual-size"]) == ("qcow2", 2**20)
    assert base.stat().st_mode & 0o777 == 0o444
    raw.unlink()  # the cached base is used from now on
    assert storage.ensure_base(raw, workdir / "bases", "blob1", "raw") == base
    assert [p.name for p in (workdir / "bases").iterdir()] == ["blob1.qcow2"]


def test_an_overlay_is_grown_to_the_flavor_size_and_never_shrunk(workdir: Path) -> None:
    raw = workdir / "small.raw"
    raw.write_bytes(b"\0" * 2**20)
    base = storage.ensure_base(raw, workdir / "bases", "small", "raw")
    storage.create_overlay(base, workdir / "big.qcow2", 8 * 2**20)
    storage.create_overlay(base, workdir / "same.qcow2", 1024)
    assert storage.virtual_size(workdir / "big.qcow2", "qcow2") == 8 * 2**20
    assert storage.virtual_size(workdir / "same.qcow2", "qcow2") == 2**20
    assert storage.info(workdir / "big.qcow2")["backing-filename"] == str(base)
    storage.resize(workdir / "big.qcow2", 16 * 2**20)
    assert storage.virtual_size(workdir / "big.qcow2") == 16 * 2**20
    with pytest.raises(storage.StorageError, match="shrink"):
        storage.resize(workdir / "big.qcow2", 2**20)


def test_flatten_merges_the_backing_chain(workdir: Path) -> None:
    raw = workdir / "flat.raw"
    raw.write_bytes(b"\x07" * 2**20)
    base = storage.ensure_base(raw, workdir / "bases", "flat", "raw")
    storage.create_overlay(base, workdir / "top.qcow2", None)
    storage.flatten(workdir / "top.qcow2", workdir / "snap.qcow2", "qcow2")
    info = storage.info(workdir / "snap.qcow2", "qcow2")
    assert "backing-filename" not in info
    out = workdir / "snap.raw"
    subprocess.run(
        ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(workdir / "snap.qcow2"), str(out)],
        check=True,
    )
    assert out.read_bytes() == b"\x07" * 2**20


def test_an_unknown_image_format_is_refused(workdir: Path) -> None:
    with pytest.raises(storage.StorageError, match="iso"):
        storage.ensure_base(workdir / "x.iso", workdir / "bases", "iso1", "iso")

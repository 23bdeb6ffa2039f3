"""nube-tiny, the test guest: built for real by images/build-nube-tiny.sh and booted under TCG.

Two guests boot, one after the other (each test class owns one, so the first is gone before the
second starts): the disk image on its own, which takes its identity from a metadata service, and a
direct kernel boot with a config drive, SSH, HTTP, hot-plugged disks and the ACPI power button.
Always `-accel tcg`: the machines here have no KVM that can run a stock Debian kernel.
Networking is QEMU's user-mode stack with restrict=on, so nothing leaves the guest except the
loopback forwards each test sets up.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

if os.geteuid() != 0:
    pytest.skip(
        "tests/host need root (the image build installs packages and unpacks device nodes): "
        "run them with sudo ./tests/run.sh",
        allow_module_level=True,
    )

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "images" / "build-nube-tiny.sh"
CACHE = Path(os.environ.get("NUBE_IMAGE_CACHE", "/var/cache/nube/images"))
# Command -> Debian package, for what the tests themselves run (the build installs its own tools).
TEST_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "xorriso": "xorriso",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}
QEMU = (
    "qemu-system-x86_64 -accel tcg,tb-size=64 -machine pc -cpu max -m 128"
    " -display none -nodefaults -no-reboot"
).split()
BOOT_TIMEOUT = 120  # seconds to READY: ~3-16 s on an idle machine, several times that when busy
EVENT_TIMEOUT = 60
INSTANCE_UUID = "5b2f7c1e-3a44-4a4e-9b1a-0c9d7e2f1a11"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tools() -> None:
    missing = sorted({pkg for cmd, pkg in TEST_TOOLS.items() if shutil.which(cmd) is None})
    if missing:
        print(f"installing what these tests run: {' '.join(missing)}")
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"},
            check=True,
            capture_output=True,
            timeout=900,
        )


@dataclass(frozen=True)
class Image:
    dir: Path
    manifest: dict[str, Any]


def build() -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=1800)
    print(result.stdout, result.stderr, sep="\n")
    assert result.returncode == 0, f"{BUILD} exited {result.returncode}:\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def image(tools: None) -> Image:
    build()
    path = (CACHE / "nube-tiny").resolve()
    return Image(path, json.loads((path / "manifest.json").read_text()))


@dataclass
class Guest:
    """One qemu process: its serial console is a file, its QMP monitor a unix socket."""

    process: subprocess.Popen[bytes]
    serial: Path
    qmp_socket: Path
    started: float = field(default_factory=time.monotonic)

    def console(self) -> str:
        try:
            return self.serial.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: str, since: int = 0, timeout: float = EVENT_TIMEOUT) -> re.Match:
        """The first match of pattern in the console output after offset `since`."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.console()
            if match := re.search(pattern, text[since:], re.MULTILINE):
                return match
            if self.process.poll() is not None or time.monotonic() > deadline:
                state = (
                    f"qemu exited with {self.process.returncode}"
                    if self.process.poll() is not None
                    else f"{timeout} s passed"
                )
                pytest.fail(f"{state} before {pattern!r} on the console:\n{text[-4000:]}")
            time.sleep(0.2)

    def qmp(self, command: str, **arguments: Any) -> Any:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(str(self.qmp_socket))
            stream = sock.makefile("rw")

            def reply() -> dict[str, Any]:
                while "event" in (message := json.loads(stream.readline())):
                    pass
                return message

            reply()  # the greeting
            for execute, args in (("qmp_capabilities", {}), (command, arguments)):
                stream.write(json.dumps({"execute": execute, "arguments": args}) + "\n")
                stream.flush()
                answer = reply()
                assert "return" in answer, f"QMP {execute} {args}: {answer}"
            return answer["return"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@contextmanager
def boot(workdir: Path, *args: str) -> Iterator[Guest]:
    serial = workdir / "serial.log"
    qmp_socket = workdir / "qmp.sock"
    command = [
        *QEMU,
        "-serial",
        f"file:{serial}",
        "-qmp",
        f"unix:{qmp_socket},server=on,wait=off",
        *args,
    ]
    with open(workdir / "qemu.stderr", "wb") as stderr:
        guest = Guest(
            subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=stderr), serial, qmp_socket
        )
    try:
        yield guest
    finally:
        guest.stop()


def test_build_writes_the_images_and_a_manifest_that_describes_them(image: Image) -> None:
    files = image.manifest["files"]
    assert set(files) == {"disk.qcow2", "vmlinux", "vmlinuz", "initrd.img"}
    for name, entry in files.items():
        assert (image.dir / name).stat().st_size == entry["size"], name
    assert files["disk.qcow2"]["size"] < 64 * 2**20
    assert image.dir.name == f"nube-tiny-{image.manifest['inputs_hash']}"
    packages = image.manifest["packages"]
    assert f"linux-image-{image.manifest['kernel_abi']}" in packages
    assert {"busybox-static", "dropbear-bin", "libc6"} <= set(packages)


def test_a_rebuild_with_the_same_inputs_does_nothing(image: Image) -> None:
    manifest_mtime = (image.dir / "manifest.json").stat().st_mtime
    result = build()
    assert "nothing to do" in result.stdout
    assert (image.dir / "manifest.json").stat().st_mtime == manifest_mtime


class MetadataService:
    """OpenStack's metadata API on 127.0.0.1, for the guest's 169.254.169.254 (via guestfwd)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.requests: list[str] = []
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service.requests.append(self.path)
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# QEMU's guestfwd hands each guest connection to a command's stdin/stdout; this one relays it to
# the metadata service's port.
RELAY = """\
import socket, sys, threading
upstream = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def to_upstream():
    while data := sys.stdin.buffer.raw.read(65536):
        upstream.sendall(data)
    upstream.shutdown(socket.SHUT_WR)
threading.Thread(target=to_upstream, daemon=True).start()
while data := upstream.recv(65536):
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
"""


@dataclass
class DiskBoot:
    guest: Guest
    metadata: MetadataService
    ready: re.Match
    seconds: float


@pytest.fixture(scope="class")
def disk_boot(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiskBoot]:
    workdir = tmp_path_factory.mktemp("disk-boot")
    meta = {"uuid": str(uuid.uuid4()), "hostname": "md1.novalocal", "name": "md1"}
    metadata = MetadataService(
        {
            "/openstack/latest/meta_data.json": json.dumps(meta).encode(),
            "/openstack/latest/user_data": b"#!/bin/sh\necho metadata-user-data ran on $(hostname)\n",
        }
    )
    relay = workdir / "relay.py"
    relay.write_text(RELAY)
    overlay = workdir / "disk.qcow2"
    subprocess.run(
        [*"qemu-img create -q -f qcow2 -F qcow2 -b".split(), image.dir / "disk.qcow2", overlay],
        check=True,
    )
    # slirp accepts a guestfwd address only inside its own network, so the guest's network is
    # 169.254.0.0/16 here: then 169.254.169.254 can be forwarded to the metadata service.
    netdev = (
        "user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2,dhcpstart=169.254.0.15,"
        f"guestfwd=tcp:169.254.169.254:80-cmd:{sys.executable} {relay} {metadata.port}"
    )
    try:
        with boot(
            workdir,
            *("-drive", f"file={overlay},format=qcow2,if=virtio"),
            *("-netdev", netdev, "-device", "virtio-net-pci,netdev=n0"),
        ) as guest:
            ready = guest.wait_for(
                r"^NUBE-TINY READY hostname=(\S+) ip=(\S+)", timeout=BOOT_TIMEOUT
            )
            seconds = time.monotonic() - guest.started
            print(f"disk boot: READY after {seconds:.1f} s")
            yield DiskBoot(guest, metadata, ready, seconds)
    finally:
        metadata.close()


class TestDiskBoot:
    def test_the_disk_alone_boots_to_ready_without_an_external_kernel(
        self, disk_boot: DiskBoot
    ) -> None:
        assert "-kernel" not in disk_boot.guest.process.args
        assert disk_boot.ready

    def test_without_a_config_drive_the_metadata_service_names_the_guest(
        self, disk_boot: DiskBoot
    ) -> None:
        assert disk_boot.ready.groups() == ("md1", "169.254.0.15")
        assert "/openstack/latest/meta_data.json" in disk_boot.metadata.requests

    def test_user_data_from_the_metadata_service_runs_at_boot(self, disk_boot: DiskBoot) -> None:
        disk_boot.guest.wait_for(r"^metadata-user-data ran on md1\r?$")


@dataclass
class KernelBoot:
    guest: Guest
    key: Path
    ssh_port: int
    http_port: int
    workdir: Path
    seconds: float


def ssh_keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="class")
def kernel_boot(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelBoot]:
    workdir = tmp_path_factory.mktemp("kernel-boot")
    key = ssh_keygen(workdir / "id_ed25519")
    public_key = (workdir / "id_ed25519.pub").read_text()
    latest = workdir / "config-drive" / "openstack" / "latest"
    latest.mkdir(parents=True)
    meta = {
        "uuid": INSTANCE_UUID,
        "hostname": "t1",
        "name": "t1",
        "public_keys": {"test": public_key},
        "keys": [{"name": "test", "type": "ssh", "data": public_key}],
    }
    (latest / "meta_data.json").write_text(json.dumps(meta))
    (latest / "user_data").write_text("#!/bin/sh\necho config-drive-user-data ran on $(hostname)\n")
    iso = workdir / "config-drive.iso"
    subprocess.run(
        [*"xorriso -as mkisofs -quiet -V config-2 -J -r -o".split(), iso, workdir / "config-drive"],
        check=True,
        capture_output=True,
    )
    ssh_port, http_port = free_port(), free_port()
    netdev = (
        f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22,"
        f"hostfwd=tcp:127.0.0.1:{http_port}-:80"
    )
    with boot(
        workdir,
        *("-kernel", str(image.dir / "vmlinux"), "-initrd", str(image.dir / "initrd.img")),
        *("-append", image.manifest["kernel_cmdline"]),
        # Nova's default for a config drive on a pc machine: an IDE CD-ROM.
        *("-drive", f"file={iso},format=raw,media=cdrom,if=ide,readonly=on"),
        *("-netdev", netdev, "-device", "virtio-net-pci,netdev=n0"),
    ) as guest:
        guest.wait_for(r"^NUBE-TINY READY ", timeout=BOOT_TIMEOUT)
        seconds = time.monotonic() - guest.started
        print(f"direct kernel boot: READY after {seconds:.1f} s")
        yield KernelBoot(guest, key, ssh_port, http_port, workdir, seconds)


SSH_OPTIONS = [
    *("-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"),
    *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
    *("-o", "ConnectTimeout=30", "-o", "LogLevel=ERROR"),
]


def ssh(boot: KernelBoot, key: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", *SSH_OPTIONS, "-i", key, "-p", str(boot.ssh_port), "root@127.0.0.1", command],
        capture_output=True,
        text=True,
        timeout=90,
    )


class TestDirectKernelBoot:
    def test_the_config_drive_names_the_guest(self, kernel_boot: KernelBoot) -> None:
        kernel_boot.guest.wait_for(r"^NUBE-TINY READY hostname=t1 ip=10\.0\.2\.15\r?$")

    def test_boot_reports_the_address_and_the_disks_it_found(self, kernel_boot: KernelBoot) -> None:
        kernel_boot.guest.wait_for(r"^NUBE-TINY IP \+ eth0 10\.0\.2\.15\r?$")
        kernel_boot.guest.wait_for(r"^NUBE-TINY BLOCK \+ sr0 size=\d+ serial=\r?$")

    def test_the_user_data_script_runs_at_boot(self, kernel_boot: KernelBoot) -> None:
        kernel_boot.guest.wait_for(r"^config-drive-user-data ran on t1\r?$")

    def test_http_answers_with_hostname_and_instance_uuid(self, kernel_boot: KernelBoot) -> None:
        url = f"http://127.0.0.1:{kernel_boot.http_port}/"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read().decode().strip() == f"t1 {INSTANCE_UUID}"

    def test_root_logs_in_over_ssh_with_the_injected_key(self, kernel_boot: KernelBoot) -> None:
        result = ssh(kernel_boot, kernel_boot.key, "hostname")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "t1"

    def test_ssh_refuses_a_key_that_was_not_injected(self, kernel_boot: KernelBoot) -> None:
        other = ssh_keygen(kernel_boot.workdir / "other_ed25519")
        result = ssh(kernel_boot, other, "hostname")
        assert result.returncode == 255
        assert "Permission denied" in result.stderr

    def test_a_hot_added_disk_is_reported_with_its_serial(self, kernel_boot: KernelBoot) -> None:
        attach(kernel_boot, "abc", "vol-abc")
        kernel_boot.guest.wait_for(r"^NUBE-TINY BLOCK \+ vd[a-z]+ size=2097152 serial=abc\r?$")

    def test_a_hot_removed_disk_is_reported_gone(self, kernel_boot: KernelBoot) -> None:
        since = len(kernel_boot.guest.console())
        attach(kernel_boot, "gone", "vol-gone")
        added = kernel_boot.guest.wait_for(r"^NUBE-TINY BLOCK \+ (vd[a-z]+) .* serial=gone", since)
        kernel_boot.guest.qmp("device_del", id="vol-gone")
        kernel_boot.guest.wait_for(rf"^NUBE-TINY BLOCK - {added[1]}\r?$", since)

    def test_the_acpi_power_button_powers_the_guest_off(self, kernel_boot: KernelBoot) -> None:
        # Last in this class: it ends the guest.
        kernel_boot.guest.qmp("system_powerdown")
        assert kernel_boot.guest.process.wait(timeout=EVENT_TIMEOUT) == 0
        assert "reboot: Power down" in kernel_boot.guest.console()


def attach(boot: KernelBoot, serial: str, name: str) -> None:
    """Hot-plug a new 1 GiB qcow2 volume as a virtio-blk PCI device, as libvirt would."""
    volume = boot.workdir / f"{name}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(volume), "1G"], check=True)
    node = {"driver": "file", "filename": str(volume)}
    boot.guest.qmp("blockdev-add", driver="qcow2", **{"node-name": name}, file=node)
    boot.guest.qmp("device_add", driver="virtio-blk-pci", drive=name, id=name, serial=serial)

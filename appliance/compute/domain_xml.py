"""Domain specs and the libvirt domain XML made from them: pure functions, no libvirt import.

The XML follows what worked on our machines (docs: /work/shared/host-notes.md §2): machine `pc`
(i440fx hot-plugs disks through ACPI with no extra controllers), TCG with a capped translation
cache, the serial console through virtlogd into a file that survives reboots, VNC on 127.0.0.1
only with QEMU's built-in websocket, no memory balloon. Reference: https://libvirt.org/formatdomain.html
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Where Nube keeps its own data in a domain's <metadata>; libvirt keys metadata by namespace URI.
METADATA_NS = "https://nube.dev/xmlns/libvirt/domain/1.0"
METADATA_PREFIX = "nube"

# The TCG translation-block cache: QEMU's default (1 GiB on 64-bit hosts) lets a 256 MiB guest grow
# to ~450 MB RSS; 64 MiB brought it to ~270 MB with no measurable boot slowdown (host-notes §2).
TB_CACHE_MIB = 64

DOMAIN_TYPES = ("qemu", "kvm")
DISK_FORMATS = ("qcow2", "raw")
_TAP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_TARGET = re.compile(r"^(vd|hd|sd)[a-z]{1,2}$")


@dataclass(frozen=True, slots=True)
class Disk:
    path: Path
    target: str  # "vda", "vdb", ... ("hdd"/"sda" style for a cdrom)
    serial: str  # /sys/block/vdX/serial in the guest; virtio-blk shows at most 20 bytes
    device: str = "disk"  # "disk" or "cdrom"
    bus: str = "virtio"  # "virtio" for disks; "ide" for the config-drive cdrom (Nova's default)
    readonly: bool = False
    format: str = "qcow2"  # "qcow2" or "raw"


@dataclass(frozen=True, slots=True)
class Nic:
    mac: str
    bridge: str
    target: str  # tap device name (<= 15 chars; not vnet*/vif*, which libvirt reserves)


@dataclass(frozen=True, slots=True)
class DomainSpec:
    name: str  # "nube-<server uuid>"
    uuid: str  # the server id, used as the libvirt domain uuid
    vcpus: int
    memory_mib: int
    disks: tuple[Disk, ...]  # root first
    serial_log: Path  # serial console appended to this file
    kernel: Path | None = None  # direct kernel boot when set
    initrd: Path | None = None
    cmdline: str | None = None
    nics: tuple[Nic, ...] = ()
    vnc: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict)


def detect_domain_type(
    kvm_device: Path = Path("/dev/kvm"), cpuinfo: Path = Path("/proc/cpuinfo")
) -> str:
    """ "kvm" only with /dev/kvm and hardware virtualisation (vmx/svm) in the CPU flags, else "qemu".

    /dev/kvm alone is not enough: on our machines it is KVM-PVM, which cannot run a stock guest
    kernel (host-notes §1), and there is no vmx/svm in cpuinfo.
    """
    if not kvm_device.exists():
        return "qemu"
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return "qemu"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and {"vmx", "svm"} & set(value.split()):
            return "kvm"
    return "qemu"


def check_spec(spec: DomainSpec) -> None:
    """Raise ValueError for a spec libvirt would reject late or misread."""
    if not spec.name or "/" in spec.name:
        raise ValueError(f"bad domain name {spec.name!r}")
    if spec.vcpus < 1 or spec.memory_mib < 16:
        raise ValueError(f"{spec.name}: needs at least 1 vCPU and 16 MiB (got {spec})")
    targets = [d.target for d in spec.disks]
    if len(set(targets)) != len(targets):
        raise ValueError(f"{spec.name}: disk targets repeat: {targets}")
    for disk in spec.disks:
        check_disk(disk)
    if (spec.initrd or spec.cmdline) and not spec.kernel:
        raise ValueError(f"{spec.name}: initrd and cmdline need a kernel")
    taps = [n.target for n in spec.nics]
    if len(set(taps)) != len(taps):
        raise ValueError(f"{spec.name}: tap names repeat: {taps}")
    for nic in spec.nics:
        if not _TAP_NAME.match(nic.target) or nic.target.startswith(("vnet", "vif")):
            raise ValueError(f"bad tap name {nic.target!r}: 1-15 characters, not vnet*/vif*")
        if not _MAC.match(nic.mac):
            raise ValueError(f"bad MAC address {nic.mac!r}")
        if not nic.bridge:
            raise ValueError("a NIC needs a bridge")


def check_disk(disk: Disk) -> None:
    if not _TARGET.match(disk.target):
        raise ValueError(f"bad disk target {disk.target!r}")
    if disk.device not in ("disk", "cdrom"):
        raise ValueError(f"bad disk device {disk.device!r}")
    if disk.bus not in ("virtio", "ide", "sata", "scsi"):
        raise ValueError(f"bad disk bus {disk.bus!r}")
    if disk.device == "cdrom" and disk.bus == "virtio":
        raise ValueError("a cdrom cannot be on the virtio bus")
    if disk.format not in DISK_FORMATS:
        raise ValueError(f"bad disk format {disk.format!r}")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def disk_element(disk: Disk) -> ET.Element:
    el = ET.Element("disk", {"type": "file", "device": disk.device})
    driver = {"name": "qemu", "type": disk.format}
    if disk.device == "disk" and not disk.readonly:
        driver["discard"] = "unmap"
    _sub(el, "driver", **driver)
    _sub(el, "source", file=str(disk.path))
    _sub(el, "target", dev=disk.target, bus=disk.bus)
    if disk.readonly or disk.device == "cdrom":
        _sub(el, "readonly")
    if disk.serial:
        _sub(el, "serial", disk.serial)
    return el


def disk_xml(disk: Disk) -> str:
    """The <disk> element alone, for hot-plug."""
    check_disk(disk)
    return ET.tostring(disk_element(disk), encoding="unicode")


def nic_element(nic: Nic) -> ET.Element:
    el = ET.Element("interface", {"type": "bridge"})
    _sub(el, "mac", address=nic.mac.lower())
    _sub(el, "source", bridge=nic.bridge)
    _sub(el, "target", dev=nic.target)
    _sub(el, "model", type="virtio")
    return el


def metadata_element(values: Mapping[str, str]) -> ET.Element:
    """<nube:instance xmlns:nube=...><nube:entry key="k">v</nube:entry>...</nube:instance>"""
    el = ET.Element(f"{METADATA_PREFIX}:instance", {f"xmlns:{METADATA_PREFIX}": METADATA_NS})
    for key in sorted(values):
        _sub(el, f"{METADATA_PREFIX}:entry", str(values[key]), key=key)
    return el


def metadata_xml(values: Mapping[str, str]) -> str:
    return ET.tostring(metadata_element(values), encoding="unicode")


def parse_metadata(xml: str) -> dict[str, str]:
    """The key/value pairs of the element metadata_xml made.

    libvirt hands it back without the namespace (`<instance><entry key=...>`), so any namespace
    or none is accepted."""
    root = ET.fromstring(xml)
    return {
        key: entry.text or ""
        for entry in root.iter()
        if entry.tag.rpartition("}")[2] == "entry" and (key := entry.get("key")) is not None
    }


def domain_xml(spec: DomainSpec, domain_type: str) -> str:
    """The persistent definition of a domain; domain_type is "qemu" (TCG) or "kvm"."""
    if domain_type not in DOMAIN_TYPES:
        raise ValueError(f"domain type must be one of {DOMAIN_TYPES}, not {domain_type!r}")
    check_spec(spec)
    dom = ET.Element("domain", {"type": domain_type})
    _sub(dom, "name", spec.name)
    _sub(dom, "uuid", spec.uuid)
    _sub(dom, "metadata").append(metadata_element(spec.metadata))
    _sub(dom, "memory", str(spec.memory_mib), unit="MiB")
    _sub(dom, "vcpu", str(spec.vcpus), placement="static")

    # cloud-init's ds-identify recognises OpenStack by the SMBIOS product name; nube-tiny and
    # cloud-init read the instance uuid from the SMBIOS system uuid.
    sysinfo = _sub(dom, "sysinfo", type="smbios")
    system = _sub(sysinfo, "system")
    _sub(system, "entry", "Nube", name="manufacturer")
    _sub(system, "entry", "OpenStack Nova", name="product")
    _sub(system, "entry", spec.uuid, name="serial")
    _sub(system, "entry", spec.uuid, name="uuid")
    _sub(system, "entry", "Virtual Machine", name="family")

    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    if spec.kernel is not None:
        _sub(os_el, "kernel", str(spec.kernel))
        if spec.initrd is not None:
            _sub(os_el, "initrd", str(spec.initrd))
        if spec.cmdline is not None:
            _sub(os_el, "cmdline", spec.cmdline)
    else:
        # With no <boot>, libvirt boots the first disk; a cdrom first would need its own order.
        _sub(os_el, "boot", dev="hd")
    _sub(os_el, "smbios", mode="sysinfo")

    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if domain_type == "qemu":
        tcg = _sub(features, "tcg")
        _sub(tcg, "tb-cache", str(TB_CACHE_MIB), unit="MiB")
        _sub(dom, "cpu", mode="maximum")
    else:
        _sub(dom, "cpu", mode="host-passthrough")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")

    devices = _sub(dom, "devices")
    for disk in spec.disks:
        devices.append(disk_element(disk))
    for nic in spec.nics:
        devices.append(nic_element(nic))
    serial = _sub(devices, "serial", type="pty")
    # virtlogd writes the file; append='on' keeps earlier boots' lines across restarts.
    _sub(serial, "log", file=str(spec.serial_log), append="on")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    if spec.vnc:
        graphics = _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", websocket="-1")
        _sub(graphics, "listen", type="address", address="127.0.0.1")
        video = _sub(devices, "video")
        _sub(video, "model", type="vga", vram="16384", heads="1")
    else:
        _sub(_sub(devices, "video"), "model", type="none")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    _sub(devices, "memballoon", model="none")
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")

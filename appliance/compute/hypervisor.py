"""The libvirt driver: plain, blocking calls on domains described by DomainSpec.

It knows nothing of projects, SQLite or OpenStack beyond Nova's power-state numbers, and it only
ever touches domains whose name starts with its prefix. Every libvirt failure surfaces as
HypervisorError with libvirt's own message. Callers run it in threads (asyncio.to_thread); one
libvirt connection is shared, which libvirt allows, and reopened if libvirtd restarted.
"""

from __future__ import annotations

import enum
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import libvirt

from appliance.compute.domain_xml import (
    METADATA_NS,
    METADATA_PREFIX,
    Disk,
    DomainSpec,
    Nic,
    check_disk,
    detect_domain_type,
    disk_xml,
    domain_xml,
    metadata_xml,
    nic_element,
    parse_metadata,
)

__all__ = [
    "Disk",
    "DomainExists",
    "DomainSpec",
    "HostInfo",
    "Hypervisor",
    "HypervisorError",
    "Nic",
    "NoSuchDomain",
    "PowerState",
    "detect_domain_type",
    "domain_xml",
]

T = TypeVar("T")

# A guest still booting ignores the power button: press it again this often (as Nova does).
ACPI_RETRY_SECONDS = 10
POLL_SECONDS = 0.2


class PowerState(enum.IntEnum):
    """Nova's power_state numbers."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


@dataclass(frozen=True, slots=True)
class HostInfo:
    """The host as libvirt reports it; `*_used` and `running` count every running domain on the
    connection (the host's load, as Nova's libvirt driver counts it), not only ours."""

    vcpus: int
    memory_mib: int
    vcpus_used: int
    memory_mib_used: int
    running: int
    hypervisor_type: str  # conn.getType(): "QEMU" for both kvm and qemu domains
    hypervisor_version: int  # QEMU's, as major * 1_000_000 + minor * 1_000 + micro
    libvirt_version: int
    cpu_info: dict[str, Any] = field(default_factory=dict)


def cpu_info(capabilities: str) -> dict[str, Any]:
    """Nova's cpu_info (nova/virt/libvirt/driver.py _get_cpu_info) from the capabilities XML."""
    cpu = ET.fromstring(capabilities).find("./host/cpu")
    if cpu is None:
        return {}
    topology = cpu.find("topology")
    top = topology.attrib if topology is not None else {}
    return {
        "arch": cpu.findtext("arch", ""),
        "model": cpu.findtext("model", ""),
        "vendor": cpu.findtext("vendor", ""),
        "topology": {k: int(top.get(k, "1")) for k in ("sockets", "cores", "threads")},
        "features": sorted(f.get("name", "") for f in cpu.iterfind("feature")),
    }


class HypervisorError(Exception):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code  # libvirt's error code (virErrorNumber), when libvirt raised it


class NoSuchDomain(HypervisorError):
    pass


class DomainExists(HypervisorError):
    pass


# libvirt's virDomainState -> Nova's power state (nova/virt/libvirt/guest.py LIBVIRT_POWER_STATE);
# shut off with a managed save image is SUSPENDED (see _power_state).
_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: PowerState.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.SUSPENDED,
}

_UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
)


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; ours are raised instead."""


libvirt.registerErrorHandler(_quiet, None)


def _message(err: libvirt.libvirtError) -> str:
    return str(err.get_error_message() or err).strip()


def _wait(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def _disk_targets(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml)
    return {
        target.get("dev", ""): disk
        for disk in root.iterfind("./devices/disk")
        if (target := disk.find("target")) is not None
    }


def _nic_macs(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml)
    return {
        mac.get("address", "").lower(): nic
        for nic in root.iterfind("./devices/interface")
        if (mac := nic.find("mac")) is not None
    }


class Hypervisor:
    def __init__(
        self, uri: str = "qemu:///system", prefix: str = "nube-", domain_type: str | None = None
    ) -> None:
        if not prefix:
            raise ValueError("the domain name prefix must not be empty")
        self.uri = uri
        self.prefix = prefix
        self.domain_type = domain_type or detect_domain_type()
        self._conn: Any = None
        self._lock = threading.Lock()

    # -- connection and errors -----------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass

    @staticmethod
    def _alive(conn: Any) -> bool:
        try:
            return bool(conn.isAlive())
        except libvirt.libvirtError:
            return False

    def _connection(self) -> Any:
        with self._lock:
            if self._conn is not None:
                if self._alive(self._conn):
                    return self._conn
                self._conn = None
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as err:
                raise HypervisorError(
                    f"cannot connect to {self.uri}: {_message(err)} "
                    "(is libvirtd running? installer/libvirt.sh starts it)",
                    err.get_error_code(),
                ) from err
            return self._conn

    def _read(self, call: Callable[[Any], T]) -> T:
        """call(connection), once more on a new connection if libvirtd went away (a restart is
        noticed only by the next call on the old one). Only for calls that change nothing."""
        conn = self._connection()
        try:
            return call(conn)
        except libvirt.libvirtError:
            if self._alive(conn):
                raise
            with self._lock:
                if self._conn is conn:
                    self._conn = None
            return call(self._connection())

    @contextmanager
    def _errors(self, action: str, name: str) -> Iterator[None]:
        try:
            yield
        except libvirt.libvirtError as err:
            code = err.get_error_code()
            if code == libvirt.VIR_ERR_NO_DOMAIN:
                raise NoSuchDomain(f"{action} {name}: no such domain", code) from err
            raise HypervisorError(f"{action} {name}: {_message(err)}", code) from err

    def _check_name(self, name: str) -> None:
        if not name.startswith(self.prefix):
            raise HypervisorError(f"refusing to touch {name!r}: its name lacks {self.prefix!r}")

    def _lookup(self, name: str) -> Any:
        self._check_name(name)
        with self._errors("look up", name):
            return self._read(lambda conn: conn.lookupByName(name))

    def _find(self, name: str) -> Any | None:
        try:
            return self._lookup(name)
        except NoSuchDomain:
            return None

    def host(self) -> HostInfo:
        """CPUs, memory and versions of the host, and what its running domains use of them."""

        def read(conn: Any) -> HostInfo:
            _arch, memory_mib, cpus, *_ = conn.getInfo()
            vcpus_used = memory_kib_used = running = 0
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                try:
                    _state, max_kib, _kib, dom_vcpus, _cpu_time = dom.info()
                except libvirt.libvirtError:
                    continue  # gone meanwhile
                vcpus_used, memory_kib_used, running = (
                    vcpus_used + dom_vcpus,
                    memory_kib_used + max_kib,
                    running + 1,
                )
            return HostInfo(
                vcpus=int(cpus), memory_mib=int(memory_mib), vcpus_used=vcpus_used,
                memory_mib_used=memory_kib_used // 1024, running=running,
                hypervisor_type=str(conn.getType()), hypervisor_version=int(conn.getVersion()),
                libvirt_version=int(conn.getLibVersion()),
                cpu_info=cpu_info(conn.getCapabilities()),
            )  # fmt: skip

        with self._errors("read", "the host"):
            return self._read(read)

    # -- lifecycle ------------------------------------------------------------------------------

    def create(self, spec: DomainSpec) -> None:
        """Define the domain persistently and boot it; on failure nothing stays defined."""
        self._check_name(spec.name)
        try:
            xml = domain_xml(spec, self.domain_type)
        except ValueError as err:
            raise HypervisorError(f"create {spec.name}: {err}") from err
        conn = self._connection()
        if self._find(spec.name) is not None:
            raise DomainExists(f"create {spec.name}: a domain of that name exists")
        try:
            conn.lookupByUUIDString(spec.uuid)
        except libvirt.libvirtError:
            pass
        else:
            raise DomainExists(f"create {spec.name}: a domain with uuid {spec.uuid} exists")
        with self._errors("define", spec.name):
            dom = conn.defineXML(xml)
        try:
            with self._errors("start", spec.name):
                dom.create()
        except HypervisorError:
            try:
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(_UNDEFINE_FLAGS)
            except libvirt.libvirtError:
                pass
            raise

    def redefine(self, spec: DomainSpec) -> None:
        """Replace the persistent definition of a shut-off domain (resize, rebuild)."""
        dom = self._lookup(spec.name)
        try:
            xml = domain_xml(spec, self.domain_type)
        except ValueError as err:
            raise HypervisorError(f"redefine {spec.name}: {err}") from err
        with self._errors("redefine", spec.name):
            if dom.UUIDString() != spec.uuid:
                raise HypervisorError(f"redefine {spec.name}: its uuid is {dom.UUIDString()}")
            if dom.isActive():
                raise HypervisorError(f"redefine {spec.name}: it is running; stop it first")
            if dom.hasManagedSaveImage(0):
                raise HypervisorError(f"redefine {spec.name}: it is suspended; resume it first")
            self._connection().defineXML(xml)

    def start(self, name: str) -> None:
        """Boot a shut-off domain, or restore its managed save; nothing if it runs already."""
        dom = self._lookup(name)
        with self._errors("start", name):
            if not dom.isActive():
                dom.create()

    def shutdown(self, name: str, timeout: float = 60) -> None:
        """Press the ACPI power button, wait up to `timeout` s, then pull the plug."""
        dom = self._lookup(name)
        with self._errors("shut down", name):
            if not dom.isActive():
                return
            if dom.state()[0] != libvirt.VIR_DOMAIN_PAUSED and self._acpi_off(dom, timeout):
                return
        self.destroy(name)

    def _acpi_off(self, dom: Any, timeout: float) -> bool:
        """Power button presses every ACPI_RETRY_SECONDS until the domain is off or time is up."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
            except libvirt.libvirtError:
                if not dom.isActive():
                    return True
                raise
            left = deadline - time.monotonic()
            if _wait(lambda: not dom.isActive(), min(ACPI_RETRY_SECONDS, max(left, 0))):
                return True
            if time.monotonic() >= deadline:
                return False

    def destroy(self, name: str) -> None:
        """Hard power off; nothing if it is off or absent."""
        dom = self._find(name)
        if dom is None:
            return
        for attempt in range(3):
            try:
                if dom.isActive():
                    dom.destroy()
                return
            except libvirt.libvirtError as err:
                code = err.get_error_code()
                if code in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
                    return
                # QEMU stuck in uninterruptible I/O resists SIGKILL for a moment ("Device or
                # resource busy"); Nova retries too.
                if code != libvirt.VIR_ERR_SYSTEM_ERROR or attempt == 2:
                    raise HypervisorError(f"destroy {name}: {_message(err)}", code) from err
                time.sleep(1)

    def reboot(self, name: str, hard: bool, timeout: float = 60) -> None:
        """Soft: ACPI power off and boot again, hard after `timeout` s. Hard: power off and boot
        from the persistent definition, discarding any managed save (a fresh boot, as Nova's)."""
        dom = self._lookup(name)
        if not hard:
            with self._errors("reboot", name):
                active = dom.isActive()
                if active and dom.state()[0] != libvirt.VIR_DOMAIN_PAUSED:
                    if self._acpi_off(dom, timeout):
                        dom.create()
                        return
        self.destroy(name)
        with self._errors("reboot", name):
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
            dom.create()

    def pause(self, name: str) -> None:
        dom = self._lookup(name)
        with self._errors("pause", name):
            if dom.state()[0] != libvirt.VIR_DOMAIN_PAUSED:
                dom.suspend()

    def unpause(self, name: str) -> None:
        dom = self._lookup(name)
        with self._errors("unpause", name):
            if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
                dom.resume()

    def suspend(self, name: str) -> None:
        """Save the memory to libvirt's managed save file and stop (SUSPENDED)."""
        dom = self._lookup(name)
        with self._errors("suspend", name):
            if dom.isActive():
                dom.managedSave(0)

    def resume(self, name: str) -> None:
        """Restore from the managed save (a shut-off domain without one boots afresh)."""
        self.start(name)

    def undefine(self, name: str) -> None:
        """Power off, drop the managed save, forget the domain; nothing if it is absent."""
        self.destroy(name)
        dom = self._find(name)
        if dom is None:
            return
        try:
            if dom.isPersistent():
                dom.undefineFlags(_UNDEFINE_FLAGS)
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise HypervisorError(
                    f"undefine {name}: {_message(err)}", err.get_error_code()
                ) from err

    # -- inspection -----------------------------------------------------------------------------

    def _power_state(self, dom: Any) -> PowerState:
        state = dom.state()[0]
        if state == libvirt.VIR_DOMAIN_SHUTOFF and dom.hasManagedSaveImage(0):
            return PowerState.SUSPENDED
        return _STATES.get(state, PowerState.NOSTATE)

    def state(self, name: str) -> PowerState | None:
        dom = self._find(name)
        if dom is None:
            return None
        try:
            return self._power_state(dom)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise HypervisorError(
                f"state of {name}: {_message(err)}", err.get_error_code()
            ) from err

    def domains(self) -> dict[str, PowerState]:
        """Every domain whose name has the prefix, with its power state."""
        with self._errors("list", "domains"):
            doms = self._read(lambda conn: conn.listAllDomains(0))
        found: dict[str, PowerState] = {}
        for dom in doms:
            try:
                name = dom.name()
                if name.startswith(self.prefix):
                    found[name] = self._power_state(dom)
            except libvirt.libvirtError as err:
                if err.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:  # gone meanwhile
                    raise HypervisorError(f"list domains: {_message(err)}") from err
        return found

    def metadata(self, name: str) -> dict[str, str]:
        dom = self._lookup(name)
        try:
            xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                return {}
            raise HypervisorError(f"metadata of {name}: {_message(err)}") from err
        return parse_metadata(xml)

    def set_metadata(self, name: str, values: dict[str, str]) -> None:
        """Replace the Nube metadata, live and in the persistent definition."""
        dom = self._lookup(name)
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        with self._errors("set metadata of", name):
            if dom.isActive():
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            dom.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                metadata_xml(values),
                METADATA_PREFIX,
                METADATA_NS,
                flags,
            )

    def xml(self, name: str, inactive: bool = False) -> str:
        """libvirt's view of the domain (live, or the persistent definition)."""
        dom = self._lookup(name)
        with self._errors("describe", name):
            return str(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0))

    def vnc_ports(self, name: str) -> tuple[int, int] | None:
        """(VNC port, websocket port) on 127.0.0.1 of a running domain, else None."""
        dom = self._lookup(name)
        with self._errors("describe", name):
            if not dom.isActive():
                return None
            root = ET.fromstring(dom.XMLDesc(0))
        graphics = root.find("./devices/graphics[@type='vnc']")
        if graphics is None:
            return None
        port, websocket = int(graphics.get("port", "-1")), int(graphics.get("websocket", "-1"))
        if port <= 0 or websocket <= 0:
            return None
        return port, websocket

    # -- disks ----------------------------------------------------------------------------------

    def attach_disk(self, name: str, disk: Disk) -> None:
        """Hot-plug into a running domain and add to its definition (definition only when off).

        Attaching the same file at the same target again does nothing (for retried jobs)."""
        try:
            check_disk(disk)
        except ValueError as err:
            raise HypervisorError(f"attach {disk.target} to {name}: {err}") from err
        dom = self._lookup(name)
        with self._errors(f"attach {disk.target} to", name):
            present = _disk_targets(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).get(disk.target)
            if present is not None:
                source = present.find("source")
                if source is not None and source.get("file") == str(disk.path):
                    return
                raise HypervisorError(f"attach {disk.target} to {name}: target in use")
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
            if dom.isActive():
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            dom.attachDeviceFlags(disk_xml(disk), flags)

    def detach_disk(self, name: str, target: str, timeout: float = 30) -> None:
        """Unplug (the guest must let go: up to `timeout` s) and remove from the definition.

        Nothing if the target is absent."""
        dom = self._lookup(name)
        action = f"detach {target} from"
        with self._errors(action, name):
            config = _disk_targets(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).get(target)
            live = _disk_targets(dom.XMLDesc(0)).get(target) if dom.isActive() else None
            if live is not None:
                self._detach_live(dom, name, target, live, timeout)
            if config is not None:
                dom.detachDeviceFlags(
                    ET.tostring(config, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_CONFIG
                )

    def _detach_live(
        self, dom: Any, name: str, target: str, el: ET.Element, timeout: float
    ) -> None:
        def gone() -> bool:
            return not dom.isActive() or target not in _disk_targets(dom.XMLDesc(0))

        # libvirt waits ~5 s for the guest's ACPI unplug and then returns anyway; the removal
        # completes when the guest acknowledges, so poll, and ask again once halfway.
        deadline = time.monotonic() + timeout
        dom.detachDeviceFlags(ET.tostring(el, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
        if _wait(gone, timeout / 2):
            return
        try:
            dom.detachDeviceFlags(
                ET.tostring(el, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE
            )
        except libvirt.libvirtError:
            pass  # "already in the process of unplug"
        if not _wait(gone, max(deadline - time.monotonic(), 0)):
            raise HypervisorError(f"detach {target} from {name}: the guest did not release it")

    # -- NICs -----------------------------------------------------------------------------------

    def attach_nic(self, name: str, nic: Nic) -> None:
        """Hot-plug a NIC into a running domain and add it to its definition (only that when off).
        A NIC with this MAC already there is left alone (retries)."""
        dom = self._lookup(name)
        with self._errors(f"attach NIC {nic.mac} to", name):
            if nic.mac.lower() in _nic_macs(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)):
                return
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
            if dom.isActive():
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            dom.attachDeviceFlags(ET.tostring(nic_element(nic), encoding="unicode"), flags)

    def detach_nic(self, name: str, mac: str, timeout: float = 30) -> None:
        """Unplug the NIC with this MAC (the guest lets go through ACPI) and drop it from the
        definition. Nothing if it is absent."""
        dom = self._lookup(name)
        mac = mac.lower()
        with self._errors(f"detach NIC {mac} from", name):
            config = _nic_macs(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).get(mac)
            live = _nic_macs(dom.XMLDesc(0)).get(mac) if dom.isActive() else None
            if live is not None:
                xml = ET.tostring(live, encoding="unicode")

                def gone() -> bool:
                    return not dom.isActive() or mac not in _nic_macs(dom.XMLDesc(0))

                dom.detachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
                if not _wait(gone, timeout):
                    raise HypervisorError(
                        f"detach NIC {mac} from {name}: the guest did not release it"
                    )
            if config is not None:
                dom.detachDeviceFlags(
                    ET.tostring(config, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_CONFIG
                )

    def block_resize(self, name: str, target: str, size_bytes: int) -> None:
        """Grow a disk of a running domain (qemu-img cannot: QEMU holds its write lock)."""
        dom = self._lookup(name)
        with self._errors(f"resize {target} of", name):
            dom.blockResize(target, size_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)

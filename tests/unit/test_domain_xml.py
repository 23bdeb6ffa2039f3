"""The domain XML is one pure function: build it from specs and read it back with ElementTree."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.compute.domain_xml import (
    METADATA_NS,
    TB_CACHE_MIB,
    Disk,
    DomainSpec,
    Nic,
    detect_domain_type,
    disk_xml,
    domain_xml,
    metadata_xml,
    parse_metadata,
)

UUID = "5b2f7c1e-3a44-4a4e-9b1a-0c9d7e2f1a11"
ROOT = Disk(Path("/data/instances/x/disk.qcow2"), "vda", UUID[:20])
CONFIG_DRIVE = Disk(Path("/data/instances/x/config.iso"), "hdd", "", "cdrom", "ide", True, "raw")
SPEC = DomainSpec(
    name=f"nube-{UUID}",
    uuid=UUID,
    vcpus=2,
    memory_mib=256,
    disks=(ROOT, CONFIG_DRIVE),
    serial_log=Path("/data/instances/x/console.log"),
    kernel=Path("/images/vmlinux"),
    initrd=Path("/images/initrd.img"),
    cmdline="console=ttyS0 quiet",
    nics=(Nic("52:54:00:AB:00:01", "nbr-1234", "nbt-1234abcd"),),
    metadata={"project_id": "p1", "flavor": "m1.tiny"},
)


def parse(spec: DomainSpec = SPEC, domain_type: str = "qemu") -> ET.Element:
    return ET.fromstring(domain_xml(spec, domain_type))


def disk(root: ET.Element, target: str) -> ET.Element:
    found = root.find(f"./devices/disk/target[@dev='{target}']/..")
    assert found is not None, target
    return found


def test_tcg_domain_caps_the_translation_cache() -> None:
    root = parse()
    assert root.get("type") == "qemu"
    cache = root.find("./features/tcg/tb-cache")
    assert cache is not None
    assert (cache.text, cache.get("unit")) == (str(TB_CACHE_MIB), "MiB")
    assert root.find("./cpu").get("mode") == "maximum"  # type: ignore[union-attr]


def test_kvm_domain_has_no_tcg_features_and_passes_the_host_cpu_through() -> None:
    root = parse(domain_type="kvm")
    assert root.get("type") == "kvm"
    assert root.find("./features/tcg") is None
    assert root.find("./cpu").get("mode") == "host-passthrough"  # type: ignore[union-attr]


def test_unknown_domain_type_is_refused() -> None:
    with pytest.raises(ValueError, match="domain type"):
        domain_xml(SPEC, "xen")


def test_name_uuid_memory_and_vcpus() -> None:
    root = parse()
    assert root.findtext("name") == SPEC.name
    assert root.findtext("uuid") == UUID
    assert root.find("memory").get("unit") == "MiB"  # type: ignore[union-attr]
    assert root.findtext("memory") == "256"
    assert root.findtext("vcpu") == "2"


def test_direct_kernel_boot_sets_kernel_initrd_and_cmdline() -> None:
    os_el = parse().find("os")
    assert os_el is not None
    assert os_el.findtext("kernel") == "/images/vmlinux"
    assert os_el.findtext("initrd") == "/images/initrd.img"
    assert os_el.findtext("cmdline") == "console=ttyS0 quiet"
    assert os_el.find("boot") is None
    assert os_el.find("type").get("machine") == "pc"  # type: ignore[union-attr]


def test_disk_boot_has_no_kernel_and_boots_the_first_disk() -> None:
    os_el = parse(replace(SPEC, kernel=None, initrd=None, cmdline=None)).find("os")
    assert os_el is not None
    assert os_el.find("kernel") is None
    assert os_el.find("boot").get("dev") == "hd"  # type: ignore[union-attr]


def test_initrd_without_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="kernel"):
        domain_xml(replace(SPEC, kernel=None), "qemu")


def test_root_disk_is_a_virtio_qcow2_with_the_server_serial() -> None:
    el = disk(parse(), "vda")
    assert el.get("device") == "disk"
    assert el.find("target").get("bus") == "virtio"  # type: ignore[union-attr]
    assert el.find("source").get("file") == str(ROOT.path)  # type: ignore[union-attr]
    assert el.find("driver").get("type") == "qcow2"  # type: ignore[union-attr]
    assert el.findtext("serial") == UUID[:20]
    assert el.find("readonly") is None


def test_disks_keep_their_order_root_first() -> None:
    targets = [t.get("dev") for t in parse().iterfind("./devices/disk/target")]
    assert targets == ["vda", "hdd"]


def test_config_drive_is_a_readonly_raw_ide_cdrom_without_serial() -> None:
    el = disk(parse(), "hdd")
    assert el.get("device") == "cdrom"
    assert el.find("target").get("bus") == "ide"  # type: ignore[union-attr]
    assert el.find("driver").get("type") == "raw"  # type: ignore[union-attr]
    assert el.find("readonly") is not None
    assert el.find("serial") is None


def test_hotplug_disk_xml_is_one_disk_element_with_serial() -> None:
    el = ET.fromstring(disk_xml(Disk(Path("/v/vol.qcow2"), "vdb", "vol-abc")))
    assert el.tag == "disk"
    assert el.find("target").get("dev") == "vdb"  # type: ignore[union-attr]
    assert el.findtext("serial") == "vol-abc"


def test_repeated_disk_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="repeat"):
        domain_xml(replace(SPEC, disks=(ROOT, ROOT)), "qemu")


def test_cdrom_on_virtio_is_refused() -> None:
    with pytest.raises(ValueError, match="cdrom"):
        disk_xml(replace(CONFIG_DRIVE, bus="virtio"))


def test_vnc_listens_on_loopback_only_with_a_websocket() -> None:
    graphics = parse().find("./devices/graphics")
    assert graphics is not None
    assert graphics.get("type") == "vnc"
    assert graphics.get("autoport") == "yes"
    assert graphics.get("websocket") == "-1"
    listens = graphics.findall("listen")
    assert [(li.get("type"), li.get("address")) for li in listens] == [("address", "127.0.0.1")]


def test_no_vnc_means_no_graphics_device() -> None:
    root = parse(replace(SPEC, vnc=False))
    assert root.find("./devices/graphics") is None
    assert root.find("./devices/video/model").get("type") == "none"  # type: ignore[union-attr]


def test_serial_console_is_appended_to_the_log_file() -> None:
    serial = parse().find("./devices/serial")
    assert serial is not None
    assert serial.get("type") == "pty"
    log = serial.find("log")
    assert log is not None
    assert (log.get("file"), log.get("append")) == (str(SPEC.serial_log), "on")
    assert parse().find("./devices/console/target").get("type") == "serial"  # type: ignore[union-attr]


def test_nic_is_a_virtio_port_on_the_bridge_with_its_tap_and_mac() -> None:
    nic = parse().find("./devices/interface")
    assert nic is not None
    assert nic.get("type") == "bridge"
    assert nic.find("source").get("bridge") == "nbr-1234"  # type: ignore[union-attr]
    assert nic.find("target").get("dev") == "nbt-1234abcd"  # type: ignore[union-attr]
    assert nic.find("mac").get("address") == "52:54:00:ab:00:01"  # type: ignore[union-attr]
    assert nic.find("model").get("type") == "virtio"  # type: ignore[union-attr]


def test_no_nics_means_no_interfaces() -> None:
    assert parse(replace(SPEC, nics=())).find("./devices/interface") is None


@pytest.mark.parametrize("tap", ["vnet0", "vif1.0", "a-name-far-too-long", ""])
def test_tap_names_libvirt_reserves_or_the_kernel_refuses_are_refused(tap: str) -> None:
    with pytest.raises(ValueError, match="tap"):
        domain_xml(replace(SPEC, nics=(Nic("52:54:00:00:00:01", "br", tap),)), "qemu")


def test_metadata_sits_under_the_nube_namespace() -> None:
    entries = parse().findall(f"./metadata/{{{METADATA_NS}}}instance/{{{METADATA_NS}}}entry")
    assert {e.get("key"): e.text for e in entries} == {"project_id": "p1", "flavor": "m1.tiny"}


def test_metadata_reads_back_with_or_without_the_namespace() -> None:
    values = {"a": "1", "b": "<&>"}
    assert parse_metadata(metadata_xml(values)) == values
    # libvirt's virDomainGetMetadata returns the element with the namespace stripped.
    assert parse_metadata('<instance><entry key="a">1</entry></instance>') == {"a": "1"}


def test_smbios_names_openstack_and_the_instance_uuid() -> None:
    root = parse()
    entries = {e.get("name"): e.text for e in root.iterfind("./sysinfo/system/entry")}
    assert entries["product"] == "OpenStack Nova"
    assert entries["uuid"] == UUID
    assert root.find("./os/smbios").get("mode") == "sysinfo"  # type: ignore[union-attr]


def test_power_button_powers_off_and_reboot_restarts() -> None:
    root = parse()
    assert root.find("./features/acpi") is not None
    assert root.findtext("on_poweroff") == "destroy"
    assert root.findtext("on_reboot") == "restart"


def test_domain_type_is_kvm_only_with_dev_kvm_and_vmx_or_svm(tmp_path: Path) -> None:
    kvm = tmp_path / "kvm"
    kvm.touch()
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 svm hypervisor\n")
    assert detect_domain_type(kvm, cpuinfo) == "kvm"
    assert detect_domain_type(tmp_path / "absent", cpuinfo) == "qemu"


def test_domain_type_is_qemu_for_kvm_pvm_without_vmx_or_svm(tmp_path: Path) -> None:
    kvm = tmp_path / "kvm"
    kvm.touch()
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 hypervisor\nvmx flags\t: none\n")
    assert detect_domain_type(kvm, cpuinfo) == "qemu"

"""Nova's admin views of the host per microversion: os-hypervisors, os-services and the
availability zones (nova/api/openstack/compute/{hypervisors,services,availability_zone}.py;
api-ref https://docs.openstack.org/api-ref/compute/#hypervisors-os-hypervisors)."""

from __future__ import annotations

import json
from typing import Any

from appliance.compute.hosts import BINARY, HOST, ZONE, HostStatus

Version = tuple[int, int]


def hypervisor_id(st: HostStatus, v: Version) -> Any:
    # 2.53 replaced the compute node's integer id by its uuid; with one host it is 1 before.
    return st.hypervisor_id if v >= (2, 53) else 1


def service_id(st: HostStatus, v: Version) -> Any:
    return st.service_id if v >= (2, 53) else 1


def hypervisor_json(
    st: HostStatus, v: Version, detail: bool, with_servers: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": hypervisor_id(st, v),
        "hypervisor_hostname": HOST,
        "state": "up" if st.up else "down",
        "status": "enabled",
    }
    info = st.info
    if detail:
        body.update(
            {
                "hypervisor_type": info.hypervisor_type if info else "QEMU",
                "hypervisor_version": info.hypervisor_version if info else 0,
                "host_ip": st.host_ip,
                "service": {"id": service_id(st, v), "host": HOST, "disabled_reason": None},
            }
        )
    if detail and v < (2, 88):
        vcpus, memory = (info.vcpus, info.memory_mib) if info else (0, 0)
        used_vcpus, used_memory = (info.vcpus_used, info.memory_mib_used) if info else (0, 0)
        cpu = info.cpu_info if info else {}
        body.update({
            "vcpus": vcpus, "memory_mb": memory, "local_gb": st.disk.total_gib,
            "vcpus_used": used_vcpus, "memory_mb_used": used_memory,
            "local_gb_used": st.disk.used_gib, "free_ram_mb": memory - used_memory,
            "free_disk_gb": st.disk.free_gib, "current_workload": st.workload,
            "running_vms": info.running if info else 0, "disk_available_least": st.disk.free_gib,
            "cpu_info": cpu if v >= (2, 28) else json.dumps(cpu),
        })  # fmt: skip
    if detail and v >= (2, 88):
        body["uptime"] = st.uptime
    if st.servers:
        body["servers"] = [{"name": name, "uuid": sid} for sid, name in st.servers]
    elif with_servers and v >= (2, 75):
        body["servers"] = []
    return body


def uptime_json(st: HostStatus, v: Version) -> dict[str, Any]:
    return {"hypervisor": {**hypervisor_json(st, v, detail=False), "uptime": st.uptime}}


def statistics_json(st: HostStatus) -> dict[str, Any]:
    keys = ("vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used",
            "free_ram_mb", "free_disk_gb", "current_workload", "running_vms", "disk_available_least")  # fmt: skip
    one = hypervisor_json(st, (2, 87), detail=True)
    return {"hypervisor_statistics": {"count": 1, **{k: one[k] for k in keys}}}


def service_json(st: HostStatus, v: Version) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": service_id(st, v), "binary": BINARY, "host": HOST, "zone": ZONE,
        "status": "enabled", "state": "up" if st.up else "down", "updated_at": st.seen_at,
        "disabled_reason": None,
    }  # fmt: skip
    if v >= (2, 11):
        body["forced_down"] = False
    return body


def zones_json(available: bool, st: HostStatus | None = None) -> dict[str, Any]:
    """The one zone; with `st` (the admin's detail view) its host and service."""
    zone: dict[str, Any] = {"zoneName": ZONE, "zoneState": {"available": available}, "hosts": None}
    if st is not None:
        service = {"available": st.up, "active": True, "updated_at": st.seen_at}
        zone["hosts"] = {HOST: {BINARY: service}}
    return {"availabilityZoneInfo": [zone]}

"""Nova v2.1 JSON shapes per microversion (tempest/lib/api_schema/response/compute/v2_*;
openstack-api.md §1.4, §1.7). `v` is the negotiated (major, minor)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from appliance.compute.models import Flavor, Keypair, Server

Version = tuple[int, int]
MIN_VERSION, MAX_VERSION = "2.1", "2.96"


def versions_json(base: str) -> dict[str, Any]:
    return {"versions": [version_doc(base)]}


def version_doc(base: str) -> dict[str, Any]:
    return {
        "id": "v2.1", "status": "CURRENT", "version": MAX_VERSION, "min_version": MIN_VERSION,
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"},
                  {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
    }  # fmt: skip


def _links(base: str, kind: str, ident: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base}/compute/v2.1/{kind}/{ident}"},
        {"rel": "bookmark", "href": f"{base}/compute/{kind}/{ident}"},
    ]


def flavor_json(f: Flavor, base: str, v: Version, detail: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"id": f.id, "name": f.name, "links": _links(base, "flavors", f.id)}
    if v >= (2, 55):
        body["description"] = f.description
    if not detail:
        return body
    body.update(
        {
            "ram": f.ram, "vcpus": f.vcpus, "disk": f.disk,
            "swap": f.swap if (v >= (2, 75) or f.swap) else "",
            "OS-FLV-EXT-DATA:ephemeral": f.ephemeral, "OS-FLV-DISABLED:disabled": f.disabled,
            "os-flavor-access:is_public": f.is_public, "rxtx_factor": f.rxtx_factor,
        }
    )  # fmt: skip
    if v >= (2, 61):
        body["extra_specs"] = dict(f.extra_specs)
    return body


def keypair_json(k: Keypair, v: Version, with_private: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": k.name,
        "public_key": k.public_key,
        "fingerprint": k.fingerprint,
    }
    if v >= (2, 2):
        body["type"] = k.type
    if with_private:
        body["user_id"] = k.user_id
        if k.private_key:
            body["private_key"] = k.private_key
    return body


def keypair_detail_json(k: Keypair, v: Version) -> dict[str, Any]:
    body = keypair_json(k, v)
    body.update({"user_id": k.user_id, "created_at": k.created_at.replace("Z", ""), "deleted": False,
                 "deleted_at": None, "updated_at": None, "id": abs(hash((k.user_id, k.name))) % 10**6})  # fmt: skip
    return body


def server_brief_json(s: Server, base: str) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "links": _links(base, "servers", s.id)}


def server_json(
    s: Server,
    base: str,
    v: Version,
    admin: bool,
    show: bool = True,
    volumes: Sequence[tuple[str, bool]] = (),
    addresses: Mapping[str, list[dict[str, Any]]] | None = None,
    security_groups: Sequence[str] = ("default",),
) -> dict[str, Any]:
    """`volumes`: (volume id, delete_on_termination) of each attached volume; `addresses`: the
    server's fixed IPs by network name (nova's `addresses`); `security_groups`: the names of the
    groups on its ports."""
    image: Any = (
        {
            "id": s.image_id,
            "links": [{"rel": "bookmark", "href": f"{base}/compute/images/{s.image_id}"}],
        }
        if s.image_id
        else ""
    )
    if v >= (2, 47):
        flavor: dict[str, Any] = {"vcpus": s.flavor.vcpus, "ram": s.flavor.ram, "disk": s.flavor.disk,
                                  "ephemeral": s.flavor.ephemeral, "swap": s.flavor.swap,
                                  "original_name": s.flavor.name, "extra_specs": dict(s.flavor.extra_specs)}  # fmt: skip
    else:
        flavor = {
            "id": s.flavor.id,
            "links": [{"rel": "bookmark", "href": f"{base}/compute/flavors/{s.flavor.id}"}],
        }
    body: dict[str, Any] = {
        "id": s.id, "name": s.name, "status": s.status, "tenant_id": s.project_id, "user_id": s.user_id,
        "metadata": dict(s.metadata), "hostId": "" if s.vm_state == "building" else _host_id(s.project_id),
        "image": image, "flavor": flavor, "created": s.created_at, "updated": s.updated_at,
        "addresses": dict(addresses or {}), "accessIPv4": s.access_ipv4, "accessIPv6": s.access_ipv6,
        "links": _links(base, "servers", s.id), "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": "nova", "config_drive": "True" if s.config_drive else "",
        "key_name": s.key_name, "OS-SRV-USG:launched_at": _usage_time(s.launched_at),
        "OS-SRV-USG:terminated_at": _usage_time(s.terminated_at),
        "OS-EXT-STS:task_state": s.task_state, "OS-EXT-STS:vm_state": s.vm_state,
        "OS-EXT-STS:power_state": s.power_state, "security_groups": [{"name": g} for g in security_groups],
        "os-extended-volumes:volumes_attached": [{"id": vid} for vid, _ in volumes],
    }  # fmt: skip
    if s.status in ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"):
        body["progress"] = 0 if s.status != "ACTIVE" else 100
    if s.fault and s.vm_state in ("error", "deleted"):
        body["fault"] = {k: s.fault[k] for k in ("code", "message", "created")} | (
            {"details": s.fault.get("details", "")} if admin else {}
        )
    if admin:
        body.update({"OS-EXT-SRV-ATTR:host": "nube", "OS-EXT-SRV-ATTR:hypervisor_hostname": "nube",
                     "OS-EXT-SRV-ATTR:instance_name": s.domain_name})  # fmt: skip
        if v >= (2, 3):
            body.update({
                "OS-EXT-SRV-ATTR:reservation_id": s.reservation_id, "OS-EXT-SRV-ATTR:launch_index": s.launch_index,
                "OS-EXT-SRV-ATTR:hostname": s.hostname, "OS-EXT-SRV-ATTR:kernel_id": "",
                "OS-EXT-SRV-ATTR:ramdisk_id": "", "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                "OS-EXT-SRV-ATTR:user_data": s.user_data,
            })  # fmt: skip
    if v >= (2, 3):
        body["os-extended-volumes:volumes_attached"] = [
            {"id": vid, "delete_on_termination": dot} for vid, dot in volumes
        ]
    if v >= (2, 9):
        body["locked"] = s.locked
    if v >= (2, 16) and admin:
        body["host_status"] = "UP"
    if v >= (2, 19):
        body["description"] = s.description
    if v >= (2, 26):
        body["tags"] = list(s.tags)
    if v >= (2, 63):
        body["trusted_image_certificates"] = None
    if v >= (2, 71) and show:
        body["server_groups"] = []
    if v >= (2, 73):
        body["locked_reason"] = s.locked_reason
    if v >= (2, 96):
        body["pinned_availability_zone"] = None
    return body


def _usage_time(stamp: str | None) -> str | None:
    return stamp.replace("Z", ".000000") if stamp else None


def _host_id(project_id: str) -> str:
    import hashlib

    return hashlib.sha224(f"{project_id}nube".encode()).hexdigest()


def action_json(row: dict[str, Any], v: Version, admin: bool, events: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": row["action"], "instance_uuid": row["server_id"], "request_id": row["request_id"],
        "user_id": row["user_id"], "project_id": row["project_id"], "start_time": _usage_time(row["start_time"]),
        "message": row["message"],
    }  # fmt: skip
    if v >= (2, 58):
        body["updated_at"] = _usage_time(row["updated_at"])
    if events:
        event: dict[str, Any] = {
            "event": f"compute_{row['action']}", "start_time": _usage_time(row["start_time"]),
            "finish_time": _usage_time(row["finish_time"]), "result": row["result"],
        }  # fmt: skip
        if admin:
            event["traceback"] = row["traceback"]
            if v >= (2, 62):
                event["host"] = "nube"
                event["hostId"] = _host_id(row["project_id"])
        if v >= (2, 84):
            event["details"] = (
                None if row["result"] != "Error" else "The action failed; see the server's fault."
            )
        body["events"] = [event]
    return body


def limits_json(
    quota: dict[str, int], used: dict[str, int], key_pairs_used: int | None = None
) -> dict[str, Any]:
    return {
        "limits": {
            "rate": [],
            "absolute": {
                "maxTotalInstances": quota["instances"], "maxTotalCores": quota["cores"],
                "maxTotalRAMSize": quota["ram"], "maxTotalKeypairs": quota["key_pairs"],
                "maxServerMeta": quota["metadata_items"], "maxPersonality": quota["injected_files"],
                "maxPersonalitySize": quota["injected_file_content_bytes"],
                "maxServerGroups": quota["server_groups"], "maxServerGroupMembers": quota["server_group_members"],
                "totalInstancesUsed": used["instances"], "totalCoresUsed": used["cores"],
                "totalRAMUsed": used["ram"], "totalServerGroupsUsed": 0,
            },
        }
    }  # fmt: skip


def interface_json(port: Mapping[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    """One os-interface attachment: a port of the server (`fixed_ips` from the network service)."""
    body: dict[str, Any] = {
        "net_id": port["network_id"], "port_id": port["id"], "mac_addr": port["mac_address"],
        "port_state": "ACTIVE" if port.get("admin_state_up", 1) else "DOWN",
        "fixed_ips": [{"subnet_id": f["subnet_id"], "ip_address": f["ip_address"]} for f in port["fixed_ips"]],
    }  # fmt: skip
    if version >= (2, 70):
        body["tag"] = None
    return body

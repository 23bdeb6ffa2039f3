"""The calls each screen makes, as plain functions over a Session (run in thread workers)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tui.client import ApiError, Json, Session

SERVICES = ("identity", "compute", "block-storage", "image", "network", "object-store")


# compute


def servers(s: Session) -> list[Json]:
    return list(s.get("compute", "/servers/detail")["servers"])


def server(s: Session, server_id: str) -> Json:
    return dict(s.get("compute", f"/servers/{server_id}")["server"])


def server_action(s: Session, server_id: str, action: str) -> None:
    body: Json = {"reboot": {"type": "SOFT"}} if action == "reboot" else {action: None}
    s.post("compute", f"/servers/{server_id}/action", body)


def delete_server(s: Session, server_id: str) -> None:
    s.delete("compute", f"/servers/{server_id}")


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    name: str
    image_id: str
    flavor_id: str
    network_id: str | None
    key_name: str | None


def launch(s: Session, spec: LaunchSpec) -> Json:
    body: Json = {"name": spec.name, "imageRef": spec.image_id, "flavorRef": spec.flavor_id}
    body["networks"] = [{"uuid": spec.network_id}] if spec.network_id else "none"
    if spec.key_name:
        body["key_name"] = spec.key_name
    return dict(s.post("compute", "/servers", {"server": body})["server"])


def server_actions(s: Session, server_id: str) -> list[Json]:
    return list(s.get("compute", f"/servers/{server_id}/os-instance-actions")["instanceActions"])


def console_log(s: Session, server_id: str) -> str:
    out = s.post("compute", f"/servers/{server_id}/action", {"os-getConsoleOutput": {}})
    return str(out["output"])


def flavors(s: Session) -> list[Json]:
    return list(s.get("compute", "/flavors/detail")["flavors"])


def keypairs(s: Session) -> list[Json]:
    return [k["keypair"] for k in s.get("compute", "/os-keypairs")["keypairs"]]


def compute_limits(s: Session) -> Json:
    return dict(s.get("compute", "/limits")["limits"]["absolute"])


# images


def images(s: Session) -> list[Json]:
    return list(s.get("image", "/v2/images")["images"])


# volumes


def volumes(s: Session) -> list[Json]:
    return list(s.get("block-storage", "/volumes/detail")["volumes"])


def create_volume(s: Session, name: str, size: int) -> Json:
    body = {"volume": {"name": name, "size": size}}
    return dict(s.post("block-storage", "/volumes", body)["volume"])


def delete_volume(s: Session, volume_id: str) -> None:
    s.delete("block-storage", f"/volumes/{volume_id}")


def attach_volume(s: Session, server_id: str, volume_id: str) -> None:
    body = {"volumeAttachment": {"volumeId": volume_id}}
    s.post("compute", f"/servers/{server_id}/os-volume_attachments", body)


def detach_volume(s: Session, server_id: str, volume_id: str) -> None:
    s.delete("compute", f"/servers/{server_id}/os-volume_attachments/{volume_id}")


def volume_limits(s: Session) -> Json:
    return dict(s.get("block-storage", "/limits")["limits"]["absolute"])


# network


def networks(s: Session) -> list[Json]:
    return list(s.get("network", "/v2.0/networks")["networks"])


def routers(s: Session) -> list[Json]:
    return list(s.get("network", "/v2.0/routers")["routers"])


def floating_ips(s: Session) -> list[Json]:
    return list(s.get("network", "/v2.0/floatingips")["floatingips"])


def security_groups(s: Session) -> list[Json]:
    return list(s.get("network", "/v2.0/security-groups")["security_groups"])


# identity


def my_projects(s: Session) -> list[Json]:
    return list(s.get("identity", "/v3/auth/projects")["projects"])


def projects(s: Session) -> list[Json]:
    return list(s.get("identity", "/v3/projects")["projects"])


def users(s: Session) -> list[Json]:
    return list(s.get("identity", "/v3/users")["users"])


def roles(s: Session) -> list[Json]:
    return list(s.get("identity", "/v3/roles")["roles"])


# object storage (Swift, over the same buckets as S3)


def _q(name: str) -> str:
    return quote(name, safe="")


def buckets(s: Session) -> list[Json]:
    return list(s.get("object-store", "", params={"format": "json"}))


def create_bucket(s: Session, name: str) -> None:
    s.put("object-store", f"/{_q(name)}")


def objects(s: Session, bucket: str) -> list[Json]:
    return list(s.get("object-store", f"/{_q(bucket)}", params={"format": "json"}))


def object_path(bucket: str, key: str) -> str:
    return f"/{_q(bucket)}/{quote(key, safe='/')}"


def delete_object(s: Session, bucket: str, key: str) -> None:
    s.delete("object-store", object_path(bucket, key))


def upload(s: Session, bucket: str, key: str, source: Path, progress: Any) -> None:
    s.upload("object-store", object_path(bucket, key), source, progress)


def download(s: Session, bucket: str, key: str, target: Path, progress: Any) -> int:
    return s.download("object-store", object_path(bucket, key), target, progress)


# overview


@dataclass(frozen=True, slots=True)
class Health:
    service: str
    ok: bool
    detail: str


def health(s: Session) -> list[Health]:
    """Each catalog endpoint's version document, answered or not, and how fast."""
    found = []
    for service in SERVICES:
        url = s.endpoints.get(service)
        if url is None:
            found.append(Health(service, False, "not in the catalog"))
            continue
        if service == "object-store":
            url = url.split("/v1/")[0] + "/info"
        started = time.monotonic()
        try:
            r = s.http.get(url, headers={"X-Auth-Token": s.token})
        except Exception as exc:  # any transport failure is the answer here
            found.append(Health(service, False, type(exc).__name__))
            continue
        ms = (time.monotonic() - started) * 1000
        ok = r.status_code < 400
        found.append(Health(service, ok, f"{ms:4.0f} ms" if ok else f"HTTP {r.status_code}"))
    return found


@dataclass(frozen=True, slots=True)
class HostHealth:
    """The hypervisor as Nova's admin view shows it (os-hypervisors/detail)."""

    up: bool
    hypervisor: str  # "QEMU 7.2.22"
    vcpus_used: int
    vcpus: int
    ram_used: int  # MiB
    ram: int
    running: int


# The last microversion whose hypervisor details carry vCPUs, memory and running VMs (2.88
# dropped them in favour of Placement, which Nube does not have).
HYPERVISOR_VERSION = "compute 2.87"


def host_health(s: Session) -> HostHealth:
    headers = {"OpenStack-API-Version": HYPERVISOR_VERSION}
    (h, *_) = s.get("compute", "/os-hypervisors/detail", headers=headers)["hypervisors"]
    v = int(h.get("hypervisor_version") or 0)
    version = f" {v // 1_000_000}.{v // 1_000 % 1_000}.{v % 1_000}" if v else ""
    return HostHealth(
        h["state"] == "up", f"{h['hypervisor_type']}{version}", int(h["vcpus_used"]),
        int(h["vcpus"]), int(h["memory_mb_used"]), int(h["memory_mb"]), int(h["running_vms"]),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Overview:
    health: list[Health]
    host: HostHealth | None  # for admins only: members may not see the hypervisor
    compute: Json
    volume: Json
    counts: dict[str, int]
    attention: list[tuple[str, str, str, str]]  # kind, name, status, message
    jobs: list[tuple[str, str, str, str]]  # start time, action, server, message


TRANSITIONAL = {"BUILD", "REBOOT", "RESIZE", "MIGRATING", "creating", "attaching", "detaching",
                "deleting", "extending", "downloading", "uploading", "queued", "saving"}  # fmt: skip


def overview(s: Session) -> Overview:
    srv, vols, imgs, nets = servers(s), volumes(s), images(s), networks(s)
    try:
        bucket_count = len(buckets(s))
    except ApiError:
        bucket_count = 0
    attention: list[tuple[str, str, str, str]] = []
    for server_row in srv:
        st = str(server_row.get("status", ""))
        if st == "ERROR" or st in TRANSITIONAL:
            fault = (server_row.get("fault") or {}).get("message", "")
            attention.append(("server", server_row.get("name", ""), st, fault))
    for v in vols:
        st = str(v.get("status", ""))
        if st.startswith("error") or st in TRANSITIONAL:
            attention.append(("volume", v.get("name") or v["id"], st, ""))
    for i in imgs:
        if i.get("status") not in ("active", "deactivated"):
            attention.append(("image", i.get("name", ""), str(i.get("status")), ""))
    counts = {
        "servers": len(srv),
        "volumes": len(vols),
        "images": len(imgs),
        "networks": len(nets),
        "buckets": bucket_count,
    }
    host = host_health(s) if s.is_admin else None
    return Overview(
        health(s), host, compute_limits(s), volume_limits(s), counts, attention,
        recent_jobs(s, srv),
    )  # fmt: skip


def recent_jobs(
    s: Session, srv: list[Json], servers_looked_at: int = 5, shown: int = 8
) -> list[tuple[str, str, str, str]]:
    """The latest instance actions (create, stop, reboot...) of the most recently updated servers."""
    jobs = []
    latest = sorted(srv, key=lambda r: str(r.get("updated", "")), reverse=True)
    for server_row in latest[:servers_looked_at]:
        for a in server_actions(s, server_row["id"]):
            when = str(a.get("start_time", "")).replace("T", " ")[:19]
            jobs.append((when, a["action"], server_row.get("name", ""), a.get("message") or ""))
    return sorted(jobs, reverse=True)[:shown]

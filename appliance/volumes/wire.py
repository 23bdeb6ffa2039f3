"""Cinder v3 JSON shapes (tempest/lib/api_schema/response/volume/*; openstack-api.md §1.2, §1.7).
`v` is the negotiated (major, minor) volume microversion."""

from __future__ import annotations

from typing import Any

from appliance.volumes.models import Snapshot, Volume
from appliance.volumes.service import DEFAULT_TYPE, DEFAULT_TYPE_ID

Version = tuple[int, int]
MIN_VERSION, MAX_VERSION = "3.0", "3.71"


def version_doc(base: str) -> dict[str, Any]:
    return {
        "id": "v3.0", "status": "CURRENT", "version": MAX_VERSION, "min_version": MIN_VERSION,
        "updated": "2023-08-31T00:00:00Z",
        "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                  {"rel": "self", "href": f"{base}/volume/v3/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}],
    }  # fmt: skip


def versions_json(base: str) -> dict[str, Any]:
    return {"versions": [version_doc(base)]}


def _links(base: str, project_id: str, kind: str, ident: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base}/volume/v3/{project_id}/{kind}/{ident}"},
        {"rel": "bookmark", "href": f"{base}/volume/{project_id}/{kind}/{ident}"},
    ]


def _stamp(value: str | None) -> str | None:
    return value


def attachment_json(vol: Volume) -> dict[str, Any]:
    return {
        "id": vol.id, "attachment_id": vol.attachment_id, "volume_id": vol.id, "server_id": vol.server_id,
        "host_name": None, "device": vol.device, "attached_at": vol.attached_at,
    }  # fmt: skip


def volume_json(
    vol: Volume, base: str, v: Version, admin: bool, detail: bool = True
) -> dict[str, Any]:
    links = _links(base, vol.project_id, "volumes", vol.id)
    if not detail:
        return {"id": vol.id, "name": vol.name, "links": links}
    attached = vol.server_id is not None and vol.status in (
        "in-use",
        "detaching",
        "extending",
        "uploading",
    )
    body: dict[str, Any] = {
        "id": vol.id, "name": vol.name, "description": vol.description, "status": str(vol.status),
        "size": vol.size, "availability_zone": "nova", "created_at": vol.created_at,
        "updated_at": vol.updated_at, "attachments": [attachment_json(vol)] if attached else [],
        "links": links, "encrypted": False, "replication_status": None, "user_id": vol.user_id,
        "metadata": dict(vol.metadata), "multiattach": False, "consistencygroup_id": None,
        "bootable": "true" if vol.bootable else "false", "volume_type": DEFAULT_TYPE,
        "snapshot_id": vol.snapshot_id, "source_volid": vol.source_volid,
        "os-vol-tenant-attr:tenant_id": vol.project_id,
    }  # fmt: skip
    if vol.image_metadata:
        body["volume_image_metadata"] = dict(vol.image_metadata)
    if admin:
        body["os-vol-host-attr:host"] = "nube@qcow2#qcow2"
        body["os-vol-mig-status-attr:migstat"] = None
        body["os-vol-mig-status-attr:name_id"] = None
    if v >= (3, 13):
        body["group_id"] = None
    if v >= (3, 21):
        body["provider_id"] = None
    if v >= (3, 48):
        body["shared_targets"] = False
        body["service_uuid"] = None
    if v >= (3, 61) and admin:
        body["cluster_name"] = None
    if v >= (3, 63):
        body["volume_type_id"] = DEFAULT_TYPE_ID
    if v >= (3, 65):
        body["consumes_quota"] = True
    return body


def snapshot_json(snap: Snapshot, base: str, v: Version, detail: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": snap.id, "name": snap.name, "description": snap.description, "status": str(snap.status),
        "created_at": snap.created_at, "updated_at": snap.updated_at, "metadata": dict(snap.metadata),
        "volume_id": snap.volume_id, "size": snap.size,
    }  # fmt: skip
    if not detail:
        return body
    body["os-extended-snapshot-attributes:progress"] = (
        "100%" if snap.status == "available" else "0%"
    )
    body["os-extended-snapshot-attributes:project_id"] = snap.project_id
    if v >= (3, 14):
        body["group_snapshot_id"] = None
    if v >= (3, 41):
        body["user_id"] = snap.user_id
    if v >= (3, 65):
        body["consumes_quota"] = True
    return body


def volume_type_json() -> dict[str, Any]:
    return {
        "id": DEFAULT_TYPE_ID, "name": DEFAULT_TYPE, "description": "Default Volume Type",
        "is_public": True, "extra_specs": {}, "qos_specs_id": None, "os-volume-type-access:is_public": True,
    }  # fmt: skip


def parse_create(body: dict[str, Any]) -> dict[str, Any]:
    """OSC sends every optional field as an explicit null (openstack-api.md §1.6): null means absent."""
    spec = body.get("volume")
    if not isinstance(spec, dict):
        from appliance.errors import Invalid

        raise Invalid("Missing required element 'volume' in request body.")
    out = {k: v for k, v in spec.items() if v is not None}
    for legacy, key in (("display_name", "name"), ("display_description", "description"),
                        ("source_volid", "source_volid"), ("image_id", "imageRef")):  # fmt: skip
        if legacy in out and key not in out:
            out[key] = out.pop(legacy)
    return out

"""Glance v2 JSON shapes (glance/api/v2/images.py::_format_image; openstack-api.md §1.7): images are
returned unwrapped, extra properties flattened to the top level, lists carry `first`, `schema`, `next`."""

from __future__ import annotations

from typing import Any

from appliance.errors import Invalid, UnsupportedMedia
from appliance.images.models import CONTAINER_FORMATS, DISK_FORMATS, Image, Member

PATCH_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)
# Glance API versions: advertised, no microversion header (the minor number only names features).
VERSIONS = ("2.17", "2.16", "2.15", "2.14", "2.13", "2.12", "2.11", "2.10", "2.9", "2.8", "2.7", "2.6",
            "2.5", "2.4", "2.3", "2.2", "2.1", "2.0")  # fmt: skip
SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at",
             "visibility", "owner", "min_disk", "min_ram")  # fmt: skip


def versions_json(image_url: str) -> dict[str, Any]:
    href = image_url.rstrip("/") + "/v2/"
    return {
        "versions": [
            {
                "id": f"v{v}",
                "status": "CURRENT" if i == 0 else "SUPPORTED",
                "links": [{"rel": "self", "href": href}],
            }
            for i, v in enumerate(VERSIONS)
        ]
    }


def image_json(image: Image) -> dict[str, Any]:
    body: dict[str, Any] = {**{k: v for k, v in image.properties.items() if v is not None}}
    body.update(
        id=image.id,
        name=image.name,
        status=str(image.status),
        visibility=str(image.visibility),
        protected=image.protected,
        os_hidden=image.os_hidden,
        checksum=image.checksum,
        os_hash_algo=image.os_hash_algo,
        os_hash_value=image.os_hash_value,
        size=image.size,
        virtual_size=image.virtual_size,
        min_disk=image.min_disk,
        min_ram=image.min_ram,
        disk_format=image.disk_format,
        container_format=image.container_format,
        owner=image.owner,
        tags=list(image.tags),
        created_at=image.created_at,
        updated_at=image.updated_at,
        self=f"/v2/images/{image.id}",
        file=f"/v2/images/{image.id}/file",
        schema="/v2/schemas/image",
    )
    return body


def images_json(images: list[Image], next_href: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "images": [image_json(i) for i in images],
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    }
    if next_href:
        body["next"] = next_href
    return body


def member_json(m: Member) -> dict[str, Any]:
    return {
        "image_id": m.image_id,
        "member_id": m.member_id,
        "status": m.status,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "schema": "/v2/schemas/member",
    }


def parse_patch(ops: Any) -> tuple[dict[str, Any], set[str]]:
    """A JSON patch (RFC 6902 subset Glance accepts) reduced to final values and removed keys."""
    if not isinstance(ops, list):
        raise Invalid("A JSON patch must be a list of operations.")
    changes: dict[str, Any] = {}
    removed: set[str] = set()
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
            raise Invalid("Each patch operation needs an 'op' of add, replace or remove.")
        path = op.get("path")
        if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1:
            raise Invalid(f"Invalid JSON pointer for this resource: {path!r}.")
        key = path[1:].replace("~1", "/").replace("~0", "~")
        if op["op"] == "remove":
            changes.pop(key, None)
            removed.add(key)
        else:
            if "value" not in op:
                raise Invalid(f"Operation {op['op']} on {path} needs a value.")
            removed.discard(key)
            changes[key] = op["value"]
    return changes, removed


def parse_sort(query: Any) -> list[tuple[str, bool]]:
    """`sort=name:asc,created_at` or repeated `sort_key`/`sort_dir`; returns (key, descending)."""
    pairs: list[tuple[str, bool]] = []
    if "sort" in query:
        for part in query["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            pairs.append((key, (direction or "desc") == "desc"))
            if direction not in ("", "asc", "desc"):
                raise Invalid(f"Invalid sort direction: {direction}")
    else:
        keys = query.getlist("sort_key")
        dirs = query.getlist("sort_dir")
        for i, key in enumerate(keys):
            direction = dirs[i] if i < len(dirs) else (dirs[0] if dirs else "desc")
            if direction not in ("asc", "desc"):
                raise Invalid(f"Invalid sort direction: {direction}")
            pairs.append((key, direction == "desc"))
    for key, _ in pairs:
        if key not in SORT_KEYS:
            raise Invalid(f"Invalid sort key: {key}. It should be one of: {', '.join(SORT_KEYS)}.")
    keys = [k for k, _ in pairs]
    if "created_at" not in keys:
        pairs.append(("created_at", True))
    if "id" not in keys:
        pairs.append(("id", True))
    return pairs


def check_patch_type(content_type: str) -> None:
    if content_type.split(";")[0].strip() not in PATCH_TYPES:
        raise UnsupportedMedia(f"Unsupported Content-Type for a patch: use {PATCH_TYPES[0]}.")


IMAGE_SCHEMA: dict[str, Any] = {
    "name": "image",
    "additionalProperties": {"type": "string"},
    "links": [
        {"href": "{self}", "rel": "self"},
        {"href": "{file}", "rel": "enclosure"},
        {"href": "{schema}", "rel": "describedby"},
    ],
    "properties": {
        "id": {
            "type": "string",
            "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$",
            "description": "An identifier for the image",
        },
        "name": {
            "type": ["null", "string"],
            "maxLength": 255,
            "description": "Descriptive name for the image",
        },
        "status": {
            "type": "string",
            "readOnly": True,
            "enum": [
                "queued",
                "saving",
                "active",
                "killed",
                "deleted",
                "uploading",
                "importing",
                "pending_delete",
                "deactivated",
            ],
        },
        "visibility": {"type": "string", "enum": ["community", "public", "private", "shared"]},
        "protected": {"type": "boolean"},
        "os_hidden": {"type": "boolean"},
        "checksum": {"type": ["null", "string"], "readOnly": True, "maxLength": 32},
        "os_hash_algo": {"type": ["null", "string"], "readOnly": True, "maxLength": 64},
        "os_hash_value": {"type": ["null", "string"], "readOnly": True, "maxLength": 128},
        "owner": {"type": ["null", "string"], "maxLength": 255},
        "size": {"type": ["null", "integer"], "readOnly": True},
        "virtual_size": {"type": ["null", "integer"], "readOnly": True},
        "container_format": {"type": ["null", "string"], "enum": [None, *CONTAINER_FORMATS]},
        "disk_format": {"type": ["null", "string"], "enum": [None, *DISK_FORMATS]},
        "created_at": {"type": "string", "readOnly": True},
        "updated_at": {"type": "string", "readOnly": True},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
        "min_ram": {"type": "integer"},
        "min_disk": {"type": "integer"},
        "self": {"type": "string", "readOnly": True},
        "file": {"type": "string", "readOnly": True},
        "schema": {"type": "string", "readOnly": True},
        "kernel_id": {"type": ["null", "string"], "is_base": False},
        "ramdisk_id": {"type": ["null", "string"], "is_base": False},
    },
}

IMAGES_SCHEMA: dict[str, Any] = {
    "name": "images",
    "properties": {
        "images": {"type": "array", "items": IMAGE_SCHEMA},
        "schema": {"type": "string"},
        "first": {"type": "string"},
        "next": {"type": "string"},
    },
    "links": [
        {"rel": "first", "href": "{first}"},
        {"rel": "next", "href": "{next}"},
        {"rel": "describedby", "href": "{schema}"},
    ],
}

MEMBER_SCHEMA: dict[str, Any] = {
    "name": "member",
    "properties": {
        "image_id": {"type": "string"},
        "member_id": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "accepted", "rejected"]},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
        "schema": {"type": "string", "readOnly": True},
    },
}

MEMBERS_SCHEMA: dict[str, Any] = {
    "name": "members",
    "properties": {
        "members": {"type": "array", "items": MEMBER_SCHEMA},
        "schema": {"type": "string"},
    },
    "links": [{"rel": "describedby", "href": "{schema}"}],
}


def import_info() -> dict[str, Any]:
    return {
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": ["glance-direct", "web-download"],
        }
    }

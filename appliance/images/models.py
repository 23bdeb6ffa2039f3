"""Image values."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any


class Status(enum.StrEnum):
    QUEUED = "queued"
    SAVING = "saving"
    UPLOADING = "uploading"  # glance-direct: bytes staged, not yet imported
    IMPORTING = "importing"
    ACTIVE = "active"
    KILLED = "killed"
    DEACTIVATED = "deactivated"
    DELETED = "deleted"


class Visibility(enum.StrEnum):
    PRIVATE = "private"
    SHARED = "shared"
    PUBLIC = "public"
    COMMUNITY = "community"


DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")


@dataclass(frozen=True, slots=True)
class Image:
    id: str
    name: str | None
    owner: str
    status: Status
    visibility: Visibility
    protected: bool
    os_hidden: bool
    disk_format: str | None
    container_format: str | None
    min_disk: int
    min_ram: int
    size: int | None
    virtual_size: int | None
    checksum: str | None
    os_hash_algo: str | None
    os_hash_value: str | None
    blob: str | None
    staged_blob: str | None
    created_at: str
    updated_at: str
    properties: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Image:
        return cls(
            id=row["id"],
            name=row["name"],
            owner=row["owner"],
            status=Status(row["status"]),
            visibility=Visibility(row["visibility"]),
            protected=bool(row["protected"]),
            os_hidden=bool(row["os_hidden"]),
            disk_format=row["disk_format"],
            container_format=row["container_format"],
            min_disk=row["min_disk"],
            min_ram=row["min_ram"],
            size=row["size"],
            virtual_size=row["virtual_size"],
            checksum=row["checksum"],
            os_hash_algo=row["os_hash_algo"],
            os_hash_value=row["os_hash_value"],
            blob=row["blob"],
            staged_blob=row["staged_blob"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            properties=json.loads(row["properties"]),
            tags=tuple(json.loads(row["tags"])),
        )


@dataclass(frozen=True, slots=True)
class Member:
    image_id: str
    member_id: str
    status: str
    created_at: str
    updated_at: str

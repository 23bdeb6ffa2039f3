"""Volume and snapshot values, read from their rows."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any


class Status(enum.StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    RESERVED = "reserved"
    ATTACHING = "attaching"
    IN_USE = "in-use"
    DETACHING = "detaching"
    EXTENDING = "extending"
    UPLOADING = "uploading"
    DELETING = "deleting"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"
    ERROR_EXTENDING = "error_extending"


@dataclass(frozen=True, slots=True)
class Volume:
    id: str
    name: str | None
    description: str | None
    project_id: str
    user_id: str
    size: int
    status: Status
    bootable: bool
    volume_type: str
    snapshot_id: str | None
    source_volid: str | None
    image_id: str | None
    metadata: dict[str, str]
    image_metadata: dict[str, Any] | None
    server_id: str | None
    attachment_id: str | None
    device: str | None
    target: str | None
    attached_at: str | None
    delete_on_termination: bool
    fault: str | None
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Volume:
        values = dict(row)
        values["status"] = Status(values["status"])
        values["bootable"] = bool(values["bootable"])
        values["delete_on_termination"] = bool(values["delete_on_termination"])
        values["metadata"] = json.loads(values["metadata"] or "{}")
        values["image_metadata"] = (
            json.loads(values["image_metadata"]) if values["image_metadata"] else None
        )
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: str
    volume_id: str
    project_id: str
    user_id: str
    name: str | None
    description: str | None
    size: int
    status: Status
    metadata: dict[str, str]
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Snapshot:
        values = dict(row)
        values["status"] = Status(values["status"])
        values["metadata"] = json.loads(values["metadata"] or "{}")
        return cls(**values)

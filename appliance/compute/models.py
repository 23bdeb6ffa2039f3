"""Compute values and Nova's state vocabulary (nova/compute/{vm_states,task_states,power_state}.py)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any


class VmState(enum.StrEnum):
    ACTIVE = "active"
    BUILDING = "building"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    STOPPED = "stopped"
    RESIZED = "resized"
    ERROR = "error"
    DELETED = "deleted"


class Task(enum.StrEnum):
    SCHEDULING = "scheduling"
    SPAWNING = "spawning"
    POWERING_OFF = "powering-off"
    POWERING_ON = "powering-on"
    REBOOTING = "rebooting"
    REBOOTING_HARD = "rebooting_hard"
    PAUSING = "pausing"
    UNPAUSING = "unpausing"
    SUSPENDING = "suspending"
    RESUMING = "resuming"
    RESIZE_PREP = "resize_prep"
    RESIZE_FINISH = "resize_finish"
    RESIZE_REVERTING = "resize_reverting"
    RESIZE_CONFIRMING = "resize_confirming"
    REBUILDING = "rebuilding"
    IMAGE_SNAPSHOT = "image_snapshot"
    IMAGE_UPLOADING = "image_uploading"
    DELETING = "deleting"


class Power(enum.IntEnum):
    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


# nova/api/openstack/common.py::_STATE_MAP: (vm_state, task_state) -> API status
_STATUS: dict[str, dict[str | None, str]] = {
    "active": {
        None: "ACTIVE",
        "rebooting": "REBOOT",
        "rebooting_hard": "HARD_REBOOT",
        "rebuilding": "REBUILD",
        "resize_prep": "RESIZE",
        "resize_finish": "RESIZE",
    },
    "building": {None: "BUILD"},
    "stopped": {
        None: "SHUTOFF",
        "resize_prep": "RESIZE",
        "resize_finish": "RESIZE",
        "rebuilding": "REBUILD",
    },
    "resized": {None: "VERIFY_RESIZE", "resize_reverting": "REVERT_RESIZE"},
    "paused": {None: "PAUSED"},
    "suspended": {None: "SUSPENDED"},
    "error": {None: "ERROR", "rebuilding": "REBUILD"},
    "deleted": {None: "DELETED"},
}
STATUSES = {"ACTIVE", "BUILD", "DELETED", "ERROR", "HARD_REBOOT", "MIGRATING", "PASSWORD", "PAUSED",
            "REBOOT", "REBUILD", "RESCUE", "RESIZE", "REVERT_RESIZE", "SHELVED", "SHELVED_OFFLOADED",
            "SHUTOFF", "SOFT_DELETED", "SUSPENDED", "UNKNOWN", "VERIFY_RESIZE"}  # fmt: skip


def api_status(vm_state: str, task_state: str | None) -> str:
    table = _STATUS.get(vm_state, {})
    return table.get(task_state, table.get(None, "UNKNOWN"))


@dataclass(frozen=True, slots=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int
    ephemeral: int = 0
    swap: int = 0
    rxtx_factor: float = 1.0
    is_public: bool = True
    disabled: bool = False
    description: str | None = None
    extra_specs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Flavor:
        return cls(
            row["id"], row["name"], row["vcpus"], row["ram"], row["disk"], row["ephemeral"], row["swap"],
            row["rxtx_factor"], bool(row["is_public"]), bool(row["disabled"]), row["description"],
            json.loads(row["extra_specs"]),
        )  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(
            {"id": self.id, "name": self.name, "vcpus": self.vcpus, "ram": self.ram, "disk": self.disk,
             "ephemeral": self.ephemeral, "swap": self.swap, "extra_specs": self.extra_specs}
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Flavor:
        d = json.loads(text)
        return cls(d["id"], d["name"], d["vcpus"], d["ram"], d["disk"], d.get("ephemeral", 0),
                   d.get("swap", 0), extra_specs=d.get("extra_specs", {}))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Keypair:
    user_id: str
    name: str
    type: str
    public_key: str
    fingerprint: str
    created_at: str
    private_key: str | None = None


@dataclass(frozen=True, slots=True)
class Server:
    id: str
    name: str
    project_id: str
    user_id: str
    image_id: str | None
    flavor: Flavor
    old_flavor: Flavor | None
    vm_state: str
    task_state: str | None
    power_state: int
    key_name: str | None
    key_data: str | None
    user_data: str | None
    config_drive: bool
    metadata: dict[str, str]
    tags: tuple[str, ...]
    description: str | None
    locked: bool
    locked_reason: str | None
    locked_by: str | None
    fault: dict[str, Any] | None
    access_ipv4: str
    access_ipv6: str
    launch_index: int
    reservation_id: str
    hostname: str
    created_at: str
    updated_at: str
    launched_at: str | None
    terminated_at: str | None

    @property
    def status(self) -> str:
        return api_status(self.vm_state, self.task_state)

    @property
    def domain_name(self) -> str:
        return f"nube-{self.id}"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Server:
        return cls(
            id=row["id"], name=row["name"], project_id=row["project_id"], user_id=row["user_id"],
            image_id=row["image_id"], flavor=Flavor.from_json(row["flavor"]),
            old_flavor=Flavor.from_json(row["old_flavor"]) if row["old_flavor"] else None,
            vm_state=row["vm_state"], task_state=row["task_state"], power_state=row["power_state"],
            key_name=row["key_name"], key_data=row["key_data"], user_data=row["user_data"],
            config_drive=bool(row["config_drive"]), metadata=json.loads(row["metadata"]),
            tags=tuple(json.loads(row["tags"])), description=row["description"], locked=bool(row["locked"]),
            locked_reason=row["locked_reason"], locked_by=row["locked_by"],
            fault=json.loads(row["fault"]) if row["fault"] else None,
            access_ipv4=row["access_ipv4"], access_ipv6=row["access_ipv6"], launch_index=row["launch_index"],
            reservation_id=row["reservation_id"], hostname=row["hostname"], created_at=row["created_at"],
            updated_at=row["updated_at"], launched_at=row["launched_at"], terminated_at=row["terminated_at"],
        )  # fmt: skip

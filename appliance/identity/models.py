"""Identity values, as services hand them out (no wire shapes here)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_DOMAIN_ID = "default"

# Keystone's bootstrap creates these implied roles: admin implies member, member implies reader.
IMPLIED_ROLES = {"admin": ("member",), "member": ("reader",)}


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | float | None) -> str | None:
    """Keystone's timestamp format: 2026-11-24T00:23:19.000000Z."""
    if moment is None:
        return None
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Domain:
    id: str
    name: str
    description: str
    enabled: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Domain:
        return cls(row["id"], row["name"], row["description"], bool(row["enabled"]))


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    domain_id: str
    description: str
    enabled: bool
    tags: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Project:
        return cls(
            row["id"],
            row["name"],
            row["domain_id"],
            row["description"],
            bool(row["enabled"]),
            tuple(json.loads(row["tags"])),
        )


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    domain_id: str
    enabled: bool
    default_project_id: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> User:
        return cls(
            row["id"],
            row["name"],
            row["domain_id"],
            bool(row["enabled"]),
            row["default_project_id"],
            json.loads(row["extra"]),
        )


@dataclass(frozen=True, slots=True)
class Role:
    id: str
    name: str
    description: str = ""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Role:
        return cls(row["id"], row["name"], row["description"])


@dataclass(frozen=True, slots=True)
class Assignment:
    user: User
    role: Role
    target_type: str  # project | domain | system
    target_id: str
    target_name: str | None = None
    target_domain: Domain | None = None
    user_domain: Domain | None = None
    implied_by: Role | None = None  # set for effective (implied) assignments


@dataclass(frozen=True, slots=True)
class AppCredential:
    id: str
    name: str
    user_id: str
    project_id: str
    description: str
    roles: tuple[Role, ...]
    unrestricted: bool
    expires_at: str | None
    secret: str | None = None  # only right after creation


@dataclass(frozen=True, slots=True)
class Ec2Credential:
    access: str
    secret: str
    user_id: str
    project_id: str
    credential_id: str


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signs with an EC2 access key: its secret, user, project and effective roles there."""

    secret: str
    user: User
    project: Project
    roles: tuple[Role, ...]


@dataclass(frozen=True, slots=True)
class Token:
    """A validated token: everything its body shows, resolved from the payload at validation time."""

    id: str
    user: User
    user_domain: Domain
    methods: tuple[str, ...]
    issued_at: float
    expires_at: float
    audit_ids: tuple[str, ...]
    roles: tuple[Role, ...] = ()
    project: Project | None = None
    project_domain: Domain | None = None
    domain: Domain | None = None
    system: bool = False
    app_cred: AppCredential | None = None

    @property
    def scoped(self) -> bool:
        return self.project is not None or self.domain is not None or self.system

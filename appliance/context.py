"""Who is calling: the value every service method takes first."""

from __future__ import annotations

from dataclasses import dataclass, field

ADMIN, MEMBER, READER = "admin", "member", "reader"


@dataclass(frozen=True, slots=True)
class Context:
    user_id: str
    user_name: str
    user_domain_id: str
    roles: frozenset[str]
    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    domain_id: str | None = None
    system: bool = False
    app_cred_id: str | None = None
    request_id: str = ""
    # The raw token and its audit id, for services that pass a token on or revoke it.
    token: str = field(default="", repr=False)
    audit_id: str = ""

    @property
    def is_admin(self) -> bool:
        """Keystone's default policy: the admin role on any scope makes a cloud admin."""
        return ADMIN in self.roles

    @property
    def can_write(self) -> bool:
        return ADMIN in self.roles or MEMBER in self.roles

    @property
    def can_read(self) -> bool:
        return bool(self.roles & {ADMIN, MEMBER, READER})

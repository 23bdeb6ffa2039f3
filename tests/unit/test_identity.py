"""Identity service logic on a real in-memory SQLite: tokens, expiry, revocation, keys, policy."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from appliance.context import Context
from appliance.db import migrate, open_db
from appliance.errors import Conflict, Forbidden, Invalid, Unauthorized
from appliance.identity.assignments import Assignments
from appliance.identity.auth import Auth, context_of
from appliance.identity.bootstrap import bootstrap
from appliance.identity.credentials import Credentials
from appliance.identity.migrations import migrations
from appliance.identity.passwords import Passwords
from appliance.identity.service import Identity
from appliance.identity.tokens import KeyRing


class World:
    def __init__(self, expiration: int = 3600, keys: KeyRing | None = None) -> None:
        self.db = open_db(None)
        migrate(self.db, [migrations])
        self.identity = Identity(self.db, Passwords(1, 8, 1))
        bootstrap(self.identity, "pw")
        self.credentials = Credentials(self.identity, KeyRing(None))
        self.keys = keys or KeyRing(None)
        self.auth = Auth(self.identity, self.credentials, self.keys, expiration)
        self.admin = self.login("admin", "pw", "admin")

    def login(self, user: str, password: str, project: str | None) -> Context:
        body: dict[str, Any] = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": user, "domain": {"id": "default"}, "password": password}
                    },
                }
            }
        }
        body["auth"]["scope"] = (
            {"project": {"name": project, "domain": {"id": "default"}}} if project else "unscoped"
        )
        return context_of(asyncio.run(self.auth.authenticate(body)))

    def tenant(self, name: str, role: str = "member") -> Context:
        project = self.identity.create_project(self.admin, {"name": name})
        user = asyncio.run(self.identity.create_user(self.admin, {"name": name, "password": "pw"}))

        Assignments(self.identity).grant(
            self.admin, user.id, "project", project.id, self.identity.role_by_name(role).id
        )
        return self.login(name, "pw", name)


@pytest.fixture
def world() -> World:
    return World()


def test_bootstrap_admin_holds_admin_and_implied_roles(world: World) -> None:
    assert world.admin.roles == {"admin", "member", "reader"}
    assert world.admin.is_admin


def test_a_token_validates_to_the_same_caller(world: World) -> None:
    again = world.auth.context(world.admin.token)
    assert (again.user_id, again.project_id, again.roles) == (
        world.admin.user_id,
        world.admin.project_id,
        world.admin.roles,
    )


def test_an_expired_token_is_refused() -> None:
    w = World(expiration=1)
    token = w.admin.token
    time.sleep(1.1)
    with pytest.raises(Unauthorized, match="expired"):
        w.auth.validate(token)


def test_a_garbled_or_foreign_token_is_refused(world: World) -> None:
    foreign = World().admin.token
    for token in ("", "not-a-token", world.admin.token[:-3], foreign):
        with pytest.raises(Unauthorized):
            world.auth.validate(token)


def test_revoking_a_token_refuses_it_and_keeps_other_tokens(world: World) -> None:
    other = world.login("admin", "pw", "admin")
    world.auth.revoke(world.auth.validate(world.admin.token))
    with pytest.raises(Unauthorized, match="revoked"):
        world.auth.validate(world.admin.token)
    assert world.auth.validate(other.token)


def test_revocations_are_reloaded_by_a_new_auth_over_the_same_db(world: World) -> None:
    world.auth.revoke(world.auth.validate(world.admin.token))
    reborn = Auth(world.identity, world.credentials, world.keys, 3600)
    with pytest.raises(Unauthorized):
        reborn.validate(world.admin.token)


def test_a_rescoped_token_dies_with_its_parent(world: World) -> None:
    unscoped = world.login("admin", "pw", None)
    body = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": unscoped.token}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    child = asyncio.run(world.auth.authenticate(body))
    world.auth.revoke(world.auth.validate(unscoped.token))
    with pytest.raises(Unauthorized):
        world.auth.validate(child.id)


def test_rotated_keys_still_open_tokens_signed_by_the_previous_key(tmp_path: Path) -> None:
    keys = KeyRing(tmp_path / "fernet")
    w = World(keys=keys)
    keys.rotate()
    assert w.auth.validate(w.admin.token).user.name == "admin"
    assert sorted(p.name for p in (tmp_path / "fernet").iterdir()) == ["0", "1"]


def test_key_files_are_private(tmp_path: Path) -> None:
    KeyRing(tmp_path / "fernet")
    assert ((tmp_path / "fernet" / "0").stat().st_mode & 0o777) == 0o600


def test_disabling_a_project_voids_its_tokens(world: World) -> None:
    alice = world.tenant("a")
    assert alice.project_id
    world.identity.update_project(world.admin, alice.project_id, {"enabled": False})
    with pytest.raises(Unauthorized):
        world.auth.validate(alice.token)


def test_disabling_a_user_voids_its_tokens_and_logins(world: World) -> None:
    alice = world.tenant("a")
    asyncio.run(world.identity.update_user(world.admin, alice.user_id, {"enabled": False}))
    with pytest.raises(Unauthorized):
        world.auth.validate(alice.token)
    with pytest.raises(Unauthorized):
        world.login("a", "pw", "a")


def test_deleting_a_project_removes_its_assignments(world: World) -> None:
    alice = world.tenant("a")
    assert alice.project_id
    world.identity.delete_project(world.admin, alice.project_id)
    rows = world.db.execute(
        "SELECT count(*) FROM role_assignments WHERE target_id = ?", [alice.project_id]
    ).fetchone()
    assert rows == (0,)


def test_passwords_are_stored_only_as_argon2id_hashes(world: World) -> None:
    stored = world.identity.password_hash(world.admin.user_id)
    assert stored is not None and stored.startswith("$argon2id$") and stored != "pw"
    assert PasswordHasher().verify(stored, "pw")


def test_member_cannot_create_projects(world: World) -> None:
    with pytest.raises(Forbidden):
        world.identity.create_project(world.tenant("a"), {"name": "b"})


def test_project_names_are_unique_per_domain(world: World) -> None:
    world.identity.create_project(world.admin, {"name": "dup"})
    with pytest.raises(Conflict):
        world.identity.create_project(world.admin, {"name": "dup"})


def test_project_name_must_be_a_non_empty_string(world: World) -> None:
    for bad in ("", "   ", 7, None):
        with pytest.raises(Invalid):
            world.identity.create_project(world.admin, {"name": bad})


def test_app_credential_is_limited_to_the_roles_chosen(world: World) -> None:
    alice = world.tenant("a")
    reader = world.identity.role_by_name("reader")
    cred = asyncio.run(
        world.credentials.create_app_credential(
            alice, alice.user_id, {"name": "ro", "roles": [{"name": "reader"}]}
        )
    )
    body = {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": cred.id, "secret": cred.secret},
            }
        }
    }
    token = asyncio.run(world.auth.authenticate(body))
    assert [r.id for r in token.roles] == [reader.id]
    assert not context_of(token).can_write


def test_app_credential_cannot_claim_a_role_the_user_lacks(world: World) -> None:
    alice = world.tenant("a")
    with pytest.raises(Forbidden):
        asyncio.run(
            world.credentials.create_app_credential(
                alice, alice.user_id, {"name": "x", "roles": [{"name": "admin"}]}
            )
        )


def test_expired_app_credential_is_refused(world: World) -> None:
    alice = world.tenant("a")
    cred = asyncio.run(world.credentials.create_app_credential(alice, alice.user_id, {"name": "x"}))
    world.db.execute(
        "UPDATE application_credentials SET expires_at = '2000-01-01T00:00:00.000000Z'"
    )
    body = {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": cred.id, "secret": cred.secret},
            }
        }
    }
    with pytest.raises(Unauthorized, match="expired"):
        asyncio.run(world.auth.authenticate(body))


def test_ec2_secret_is_stored_encrypted_and_found_by_access_key(world: World) -> None:
    alice = world.tenant("a")
    cred = world.credentials.create_ec2(alice, alice.user_id, alice.project_id)
    (blob,) = world.db.execute("SELECT blob FROM credentials").fetchone()
    assert cred.secret not in blob and cred.access not in blob
    found = world.credentials.ec2_by_access(cred.access)
    assert found is not None and (found.secret, found.project_id) == (cred.secret, alice.project_id)


def test_ec2_signer_is_kept_until_any_identity_change_even_from_another_connection(
    tmp_path: Path,
) -> None:
    db = open_db(tmp_path / "nube.db")
    migrate(db, [migrations])
    identity = Identity(db, Passwords(1, 8, 1))
    bootstrap(identity, "pw")
    credentials = Credentials(identity, KeyRing(None))
    world = World.__new__(World)  # the same helpers, over this file-backed database
    world.db, world.identity, world.credentials = db, identity, credentials
    world.keys = KeyRing(None)
    world.auth = Auth(identity, credentials, world.keys, 3600)
    world.admin = world.login("admin", "pw", "admin")
    alice = world.tenant("a")
    cred = credentials.create_ec2(alice, alice.user_id, alice.project_id)
    first = credentials.signer(cred.access)
    assert first is not None and first.secret == cred.secret
    assert (first.user.id, first.project.id) == (alice.user_id, alice.project_id)
    assert {r.name for r in first.roles} == {"member", "reader"}
    assert credentials.signer(cred.access) is first  # nothing changed: kept
    assert credentials.signer("no-such-key") is None

    member = identity.role_by_name("member").id
    Assignments(identity).revoke(world.admin, alice.user_id, "project", alice.project_id, member)
    assert credentials.signer(cred.access).roles == ()  # type: ignore[union-attr]
    identity.update_project(world.admin, alice.project_id, {"enabled": False})
    assert not credentials.signer(cred.access).project.enabled  # type: ignore[union-attr]
    other = sqlite3.connect(tmp_path / "nube.db")  # another writer, as another process would be
    with other:
        other.execute("UPDATE users SET enabled = 0 WHERE id = ?", [alice.user_id])
    other.close()
    assert not credentials.signer(cred.access).user.enabled  # type: ignore[union-attr]
    credentials.delete_ec2(world.admin, alice.user_id, cred.access)
    assert credentials.signer(cred.access) is None


def test_reader_cannot_create_ec2_credentials(world: World) -> None:
    bob = world.tenant("b", role="reader")
    with pytest.raises(Forbidden):
        world.credentials.create_ec2(bob, bob.user_id, bob.project_id)


def test_admin_cannot_delete_itself(world: World) -> None:
    with pytest.raises(Forbidden):
        world.identity.delete_user(world.admin, world.admin.user_id)


def test_context_is_a_value(world: World) -> None:
    assert replace(world.admin, request_id="r").request_id == "r"


def test_a_cached_validation_does_not_outlive_a_role_removal(world: World) -> None:
    alice = world.tenant("a")
    assert world.auth.validate(alice.token)  # now cached
    assert alice.project_id
    member = world.identity.role_by_name("member")
    Assignments(world.identity).revoke(
        world.admin, alice.user_id, "project", alice.project_id, member.id
    )
    with pytest.raises(Unauthorized):
        world.auth.validate(alice.token)

"""Application credentials (a secret that authenticates as a user in one project) and EC2 credentials
(access/secret pairs that sign S3 requests). EC2 blobs are stored encrypted; app secrets only hashed."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import uuid
from datetime import datetime
from typing import Any

from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound
from appliance.identity.models import AppCredential, Ec2Credential, Role, Signer, iso, new_id, now
from appliance.identity.service import Identity
from appliance.identity.tokens import KeyRing


def access_hash(access: str) -> str:
    """Keystone stores an EC2 credential under sha256(access) (keystone.common.utils.hash_access_key)."""
    return hashlib.sha256(access.encode()).hexdigest()


def _owner_or_admin(ctx: Context, user_id: str) -> None:
    if ctx.user_id != user_id and not ctx.is_admin:
        raise Forbidden("You are not authorized to manage credentials of another user.")


def _writer(ctx: Context, what: str) -> None:
    """Creating credentials is a write: readers may not, and nor may a restricted app credential."""
    if not ctx.can_write:
        raise Forbidden(f"You are not authorized to create {what}: the member role is required.")
    if ctx.app_cred_id is not None and not ctx.is_admin:
        raise Forbidden(f"An application credential cannot be used to create {what}.")


OPENED_KEEP = 4096  # decrypted EC2 credential blobs kept in memory (oldest dropped first)
SIGNERS_KEEP = 1024  # principals behind access keys kept for signed S3 requests


class Credentials:
    def __init__(self, identity: Identity, blob_keys: KeyRing) -> None:
        self.identity = identity
        self.db = identity.db
        self.blob_keys = blob_keys
        # Decrypted EC2 blobs by their ciphertext, so reading a credential does not pay a Fernet
        # decryption each time. The row itself is still read: a deleted or re-encrypted
        # credential never answers from here.
        self._opened: dict[str, dict[str, Any]] = {}
        # Signers by access key, with the identity generation they were read at: an entry answers
        # only while no domain, project, user, role, assignment or credential has changed since.
        self._signers: dict[str, tuple[int, Signer]] = {}

    # -- application credentials ----------------------------------------------------------------

    def _app_cred(self, row: dict[str, Any], secret: str | None = None) -> AppCredential:
        roles = tuple(Role(r["id"], r["name"]) for r in json.loads(row["roles"]))
        return AppCredential(
            id=row["id"],
            name=row["name"],
            user_id=row["user_id"],
            project_id=row["project_id"],
            description=row["description"],
            roles=roles,
            unrestricted=bool(row["unrestricted"]),
            expires_at=row["expires_at"],
            secret=secret,
        )

    def app_credential(self, app_cred_id: str) -> AppCredential:
        row = self.identity._one(
            "SELECT * FROM application_credentials WHERE id = ?", [app_cred_id]
        )
        if row is None:
            raise NotFound(f"Could not find Application Credential: {app_cred_id}.")
        return self._app_cred(row)

    def app_credential_by_name(self, user_id: str, name: str) -> AppCredential:
        row = self.identity._one(
            "SELECT * FROM application_credentials WHERE user_id = ? AND name = ?", [user_id, name]
        )
        if row is None:
            raise NotFound(f"Could not find Application Credential: {name}.")
        return self._app_cred(row)

    def app_secret_hash(self, app_cred_id: str) -> str | None:
        row = self.identity._one(
            "SELECT secret_hash FROM application_credentials WHERE id = ?", [app_cred_id]
        )
        return None if row is None else row["secret_hash"]

    async def create_app_credential(
        self, ctx: Context, user_id: str, spec: dict[str, Any]
    ) -> AppCredential:
        if ctx.user_id != user_id:
            raise Forbidden("You can only create application credentials for yourself.")
        if ctx.project_id is None:
            raise Forbidden("A project-scoped token is required to create application credentials.")
        _writer(ctx, "application credentials")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Invalid("Application credential name must be a non-empty string.")
        held = self.identity.roles_on(user_id, "project", ctx.project_id)
        wanted = spec.get("roles")
        if wanted:
            chosen = []
            for ref in wanted:
                match = [r for r in held if r.id == ref.get("id") or r.name == ref.get("name")]
                if not match:
                    raise Forbidden(f"You do not hold the role {ref} on this project.")
                chosen.append(match[0])
            roles = tuple(chosen)
        else:
            roles = held
        expires = spec.get("expires_at")
        if expires is not None:
            try:
                moment = datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
            except ValueError:
                raise Invalid(f"Invalid expires_at: {expires}.") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=now().tzinfo)
            if moment <= now():
                raise Invalid("expires_at must be in the future.")
            expires = iso(moment)
        secret = spec.get("secret") or secrets.token_urlsafe(64)
        if not isinstance(secret, str):
            raise Invalid("secret must be a string.")
        secret_hash = await self.identity.passwords.hash(secret)
        app_id = new_id()
        try:
            with self.db.atomic():
                self.db.execute(
                    "INSERT INTO application_credentials (id, name, user_id, project_id, description, "
                    "secret_hash, roles, unrestricted, expires_at, created_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [
                        app_id,
                        name,
                        user_id,
                        ctx.project_id,
                        spec.get("description") or "",
                        secret_hash,
                        json.dumps([{"id": r.id, "name": r.name} for r in roles]),
                        int(bool(spec.get("unrestricted", False))),
                        expires,
                        iso(now()),
                    ],
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"An application credential named {name} already exists.") from None
        return self._app_cred(
            self.identity._one("SELECT * FROM application_credentials WHERE id = ?", [app_id])
            or {},
            secret=secret,
        )

    def list_app_credentials(
        self, ctx: Context, user_id: str, name: str | None
    ) -> list[AppCredential]:
        _owner_or_admin(ctx, user_id)
        rows = self.identity._all(
            "SELECT * FROM application_credentials WHERE user_id = ? ORDER BY name", [user_id]
        )
        return [self._app_cred(r) for r in rows if name is None or r["name"] == name]

    def get_app_credential(self, ctx: Context, user_id: str, app_cred_id: str) -> AppCredential:
        _owner_or_admin(ctx, user_id)
        cred = self.app_credential(app_cred_id)
        if cred.user_id != user_id:
            raise NotFound(f"Could not find Application Credential: {app_cred_id}.")
        return cred

    def delete_app_credential(self, ctx: Context, user_id: str, app_cred_id: str) -> None:
        self.get_app_credential(ctx, user_id, app_cred_id)
        if ctx.app_cred_id is not None and not ctx.is_admin:
            raise Forbidden("An application credential cannot delete application credentials.")
        with self.db.atomic():
            self.db.execute("DELETE FROM application_credentials WHERE id = ?", [app_cred_id])

    # -- EC2 credentials -----------------------------------------------------------------------

    def _ec2(self, row: dict[str, Any]) -> Ec2Credential:
        blob = self._opened.get(row["blob"])
        if blob is None:
            raw = self.blob_keys.decrypt(row["blob"])
            if raw is None:
                raise NotFound("The credential cannot be read with the current keys.")
            blob = json.loads(raw)
            if len(self._opened) >= OPENED_KEEP:
                self._opened.pop(next(iter(self._opened)))
            self._opened[row["blob"]] = blob
        return Ec2Credential(
            blob["access"], blob["secret"], row["user_id"], row["project_id"], row["id"]
        )

    def create_ec2(self, ctx: Context, user_id: str, project_id: Any) -> Ec2Credential:
        _owner_or_admin(ctx, user_id)
        if not isinstance(project_id, str) or not project_id:
            raise Invalid("tenant_id (the project id) is required.")
        if not ctx.is_admin:
            _writer(ctx, "EC2 credentials")
            if project_id != ctx.project_id:
                raise Forbidden(
                    "You can only create EC2 credentials for the project of your token."
                )
        self.identity.user(user_id)
        self.identity.project(project_id)
        if not self.identity.roles_on(user_id, "project", project_id):
            raise Forbidden(f"User {user_id} has no role on project {project_id}.")
        access, secret = uuid.uuid4().hex, uuid.uuid4().hex
        blob = json.dumps({"access": access, "secret": secret, "trust_id": None})
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO credentials (id, user_id, project_id, type, blob, created_at) "
                "VALUES (?,?,?,'ec2',?,?)",
                [
                    access_hash(access),
                    user_id,
                    project_id,
                    self.blob_keys.encrypt(blob.encode()),
                    iso(now()),
                ],
            )
        return Ec2Credential(access, secret, user_id, project_id, access_hash(access))

    def list_ec2(self, ctx: Context, user_id: str) -> list[Ec2Credential]:
        _owner_or_admin(ctx, user_id)
        self.identity.user(user_id)
        rows = self.identity._all(
            "SELECT * FROM credentials WHERE user_id = ? AND type = 'ec2' ORDER BY created_at",
            [user_id],
        )
        return [self._ec2(r) for r in rows]

    def get_ec2(self, ctx: Context, user_id: str, access: str) -> Ec2Credential:
        _owner_or_admin(ctx, user_id)
        cred = self.ec2_by_access(access)
        if cred is None or cred.user_id != user_id:
            raise NotFound(f"Could not find credential: {access}.")
        return cred

    def delete_ec2(self, ctx: Context, user_id: str, access: str) -> None:
        cred = self.get_ec2(ctx, user_id, access)
        with self.db.atomic():
            self.db.execute("DELETE FROM credentials WHERE id = ?", [cred.credential_id])

    def ec2_by_access(self, access: str) -> Ec2Credential | None:
        """For request signing (S3): the credential behind an access key, with its secret."""
        row = self.identity._one(
            "SELECT * FROM credentials WHERE id = ? AND type = 'ec2'", [access_hash(access)]
        )
        return None if row is None else self._ec2(row)

    def signer(self, access: str) -> Signer | None:
        """For request signing (S3): who signs with `access` (None: no such key). One query while
        identity is unchanged since the last request with this key, four after a change."""
        row = self.identity._one("SELECT n FROM identity_generation", [])
        generation = None if row is None else row["n"]
        kept = self._signers.get(access)
        if kept is not None and generation is not None and kept[0] == generation:
            return kept[1]
        cred = self.ec2_by_access(access)
        if cred is None:  # not kept: unknown keys must not push known ones out
            return None
        identity = self.identity
        user, project = identity.user(cred.user_id), identity.project(cred.project_id)
        found = Signer(
            cred.secret, user, project, identity.roles_on(user.id, "project", project.id)
        )
        if generation is not None:
            if len(self._signers) >= SIGNERS_KEEP:
                self._signers.pop(next(iter(self._signers)))
            self._signers[access] = (generation, found)
        return found

    # -- generic /v3/credentials (read and delete; EC2 ones are created above) -------------------

    def list_credentials(
        self, ctx: Context, user_id: str | None, kind: str | None
    ) -> list[dict[str, Any]]:
        if not ctx.is_admin:
            if user_id not in (None, ctx.user_id):
                raise Forbidden("You can only list your own credentials.")
            user_id = ctx.user_id
        where, params = [], []
        if user_id:
            where.append("user_id = ?")
            params.append(user_id)
        if kind:
            where.append("type = ?")
            params.append(kind)
        sql = "SELECT * FROM credentials" + (" WHERE " + " AND ".join(where) if where else "")
        return [self._plain(r) for r in self.identity._all(sql + " ORDER BY created_at", params)]

    def get_credential(self, ctx: Context, credential_id: str) -> dict[str, Any]:
        row = self.identity._one("SELECT * FROM credentials WHERE id = ?", [credential_id])
        if row is None or (row["user_id"] != ctx.user_id and not ctx.is_admin):
            raise NotFound(f"Could not find credential: {credential_id}.")
        return self._plain(row)

    def delete_credential(self, ctx: Context, credential_id: str) -> None:
        self.get_credential(ctx, credential_id)
        with self.db.atomic():
            self.db.execute("DELETE FROM credentials WHERE id = ?", [credential_id])

    def _plain(self, row: dict[str, Any]) -> dict[str, Any]:
        raw = self.blob_keys.decrypt(row["blob"])
        return {**row, "blob": raw.decode() if raw is not None else ""}

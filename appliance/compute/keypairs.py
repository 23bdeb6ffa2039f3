"""Keypairs, per user: import a public key, or generate one and hand the private key out once."""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlite_utils import Database

from appliance.compute.models import Keypair
from appliance.context import Context
from appliance.errors import Conflict, Forbidden, Invalid, NotFound, OverQuota
from appliance.identity.models import iso, now

_NAME = re.compile(r"^[a-zA-Z0-9 _\-@.]{1,255}$")


def fingerprint(public_key: str) -> str:
    """Nova's fingerprint: MD5 of the key blob, colon-separated hex (nova/crypto.py)."""
    parts = public_key.split()
    if len(parts) < 2:
        raise Invalid("Keypair data is invalid: failed to generate fingerprint.")
    try:
        blob = base64.b64decode(parts[1].encode(), validate=True)
    except ValueError:
        raise Invalid("Keypair data is invalid: failed to generate fingerprint.") from None
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def _check_public_key(public_key: str) -> None:
    try:
        serialization.load_ssh_public_key(public_key.strip().encode())
    except (ValueError, TypeError, Exception) as exc:  # cryptography raises several kinds
        raise Invalid(f"Keypair data is invalid: {exc}") from None


class Keypairs:
    def __init__(self, db: Database, limit: Callable[[str, str], int]) -> None:
        self.db = db
        self.limit = limit

    def _owner(self, ctx: Context, user_id: str | None) -> str:
        if user_id and user_id != ctx.user_id:
            if not ctx.is_admin:
                raise Forbidden(
                    "Policy doesn't allow os_compute_api:os-keypairs to be performed for another user."
                )
            return user_id
        return ctx.user_id

    def _rows(self, sql: str, params: list[Any]) -> list[Keypair]:
        cursor = self.db.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [Keypair(**dict(zip(names, r, strict=True))) for r in cursor.fetchall()]

    def list_keypairs(self, ctx: Context, user_id: str | None = None) -> list[Keypair]:
        owner = self._owner(ctx, user_id)
        return self._rows("SELECT * FROM keypairs WHERE user_id = ? ORDER BY name", [owner])

    def get(self, ctx: Context, name: str, user_id: str | None = None) -> Keypair:
        owner = self._owner(ctx, user_id)
        found = self._rows("SELECT * FROM keypairs WHERE user_id = ? AND name = ?", [owner, name])
        if not found:
            raise NotFound(f"Keypair {name} not found for user {owner}")
        return found[0]

    def create(self, ctx: Context, spec: dict[str, Any]) -> Keypair:
        owner = self._owner(ctx, spec.get("user_id"))
        name = spec.get("name")
        if not isinstance(name, str) or not _NAME.match(name) or name.strip() != name:
            raise Invalid(
                "Keypair name contains unsafe characters or is not 1-255 characters long."
            )
        kind = spec.get("type", "ssh")
        if kind != "ssh":
            raise Invalid(f"Keypair type {kind} is not supported here; use ssh.")
        limit = self.limit(ctx.project_id or "", "server_key_pairs")
        (count,) = self.db.execute(
            "SELECT count(*) FROM keypairs WHERE user_id = ?", [owner]
        ).fetchone()
        if 0 <= limit <= count:
            raise OverQuota("Quota exceeded, too many key pairs.")
        private = None
        public = spec.get("public_key")
        if public is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            private = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ).decode()
            public = (
                key.public_key()
                .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
                .decode()
                + " Generated-by-Nova"
            )
        elif not isinstance(public, str):
            raise Invalid("public_key must be a string.")
        else:
            _check_public_key(public)
        pair = Keypair(
            owner, name, "ssh", public.strip(), fingerprint(public), iso(now()) or "", private
        )
        try:
            with self.db.atomic():
                self.db.execute(
                    "INSERT INTO keypairs (user_id, name, type, public_key, fingerprint, created_at) VALUES (?,?,?,?,?,?)",
                    [
                        pair.user_id,
                        pair.name,
                        pair.type,
                        pair.public_key,
                        pair.fingerprint,
                        pair.created_at,
                    ],
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"Key pair '{name}' already exists.") from None
        return pair

    def delete(self, ctx: Context, name: str, user_id: str | None = None) -> None:
        pair = self.get(ctx, name, user_id)
        with self.db.atomic():
            self.db.execute(
                "DELETE FROM keypairs WHERE user_id = ? AND name = ?", [pair.user_id, name]
            )

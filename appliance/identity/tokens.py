"""Token driver: Fernet-encrypted payloads (as Keystone's fernet provider), keys under <data-dir>/keys.

A token carries who, how and for which scope; roles and names are looked up when it is validated, so a
removed role or a disabled user takes effect at once. Keys rotate: the newest key signs, all decrypt.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

KEEP_KEYS = 3


@dataclass(frozen=True, slots=True)
class TokenPayload:
    user_id: str
    methods: tuple[str, ...]
    scope_type: str | None  # "project" | "domain" | "system" | None (unscoped)
    scope_id: str | None  # project id, domain id, or "all"
    issued_at: float
    expires_at: float
    audit_ids: tuple[str, ...]  # this token's audit id, then its parent's for a rescoped token
    app_cred_id: str | None = None


def new_audit_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class KeyRing:
    """Fernet keys in a directory: files named 0, 1, 2…; the highest number encrypts, all decrypt."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._fernet = self._load()

    def _numbered(self) -> list[Path]:
        assert self.directory is not None
        return sorted(
            (p for p in self.directory.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
        )

    def _load(self) -> MultiFernet:
        if self.directory is None:  # in-memory, for unit tests
            return MultiFernet([Fernet(Fernet.generate_key())])
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        files = self._numbered()
        if not files:
            _write_private(self.directory / "0", Fernet.generate_key())
            files = self._numbered()
        return MultiFernet([Fernet(p.read_bytes().strip()) for p in reversed(files)])

    def rotate(self) -> None:
        """Add a new signing key and drop the oldest beyond KEEP_KEYS (tokens they signed stop working)."""
        assert self.directory is not None
        files = self._numbered()
        number = int(files[-1].name) + 1 if files else 0
        _write_private(self.directory / str(number), Fernet.generate_key())
        for old in self._numbered()[:-KEEP_KEYS]:
            old.unlink()
        self._fernet = self._load()

    def encrypt(self, data: bytes) -> str:
        return self._fernet.encrypt(data).decode()

    def decrypt(self, text: str) -> bytes | None:
        try:
            return self._fernet.decrypt(text.encode())
        except InvalidToken:
            return None

    def seal(self, payload: TokenPayload) -> str:
        body = {
            "u": payload.user_id,
            "m": list(payload.methods),
            "s": [payload.scope_type, payload.scope_id] if payload.scope_type else None,
            "i": payload.issued_at,
            "e": payload.expires_at,
            "a": list(payload.audit_ids),
        }
        if payload.app_cred_id:
            body["c"] = payload.app_cred_id
        raw = json.dumps(body, separators=(",", ":")).encode()
        return self.encrypt(raw).rstrip("=")

    def open(self, token: str) -> TokenPayload | None:
        """The payload of a token this cloud issued, or None for anything else (forged, garbled)."""
        padded = token.strip() + "=" * (-len(token.strip()) % 4)
        raw = self.decrypt(padded)
        if raw is None:
            return None
        try:
            body = json.loads(raw)
            scope = body.get("s") or [None, None]
            return TokenPayload(
                user_id=body["u"],
                methods=tuple(body["m"]),
                scope_type=scope[0],
                scope_id=scope[1],
                issued_at=float(body["i"]),
                expires_at=float(body["e"]),
                audit_ids=tuple(body["a"]),
                app_cred_id=body.get("c"),
            )
        except (ValueError, KeyError, TypeError, IndexError):
            return None

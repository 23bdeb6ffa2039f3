"""Authentication and tokens: password, token (rescope) and application-credential methods; project,
domain, system and unscoped scope; validation; revocation that takes effect at once."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from appliance.context import Context
from appliance.errors import Forbidden, Invalid, NotFound, Unauthorized
from appliance.identity.credentials import Credentials
from appliance.identity.models import AppCredential, Domain, Project, Role, Token, User, iso
from appliance.identity.service import Identity
from appliance.identity.tokens import KeyRing, TokenPayload, new_audit_id

_DENIED = "The request you have made requires authentication."
CACHE_SIZE = 10_000


class Auth:
    def __init__(
        self, identity: Identity, credentials: Credentials, keys: KeyRing, expiration: int
    ) -> None:
        self.identity = identity
        self.credentials = credentials
        self.keys = keys
        self.expiration = expiration
        self.db = identity.db
        now = time.time()
        with self.db.atomic():
            self.db.execute("DELETE FROM revocations WHERE expires_at < ?", [now])
        # Kept in memory too: validation is the hot path and this process is the only writer.
        self._revoked_audit: set[str] = set()
        self._revoked_users: dict[str, float] = {}
        for row in self.identity._all("SELECT * FROM revocations"):
            self._remember(row["audit_id"], row["user_id"], row["issued_before"])
        identity.on_user_revoked.append(self.revoke_user)
        self._cache: dict[str, tuple[Token, int]] = {}

    # -- authentication ------------------------------------------------------------------------

    async def authenticate(self, body: dict[str, Any]) -> Token:
        auth = body.get("auth")
        if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
            raise Invalid("Expecting to find identity in auth.")
        ident = auth["identity"]
        methods = ident.get("methods")
        if not isinstance(methods, list) or not methods:
            raise Invalid("Expecting to find methods in identity.")
        parent: Token | None = None
        app_cred: AppCredential | None = None
        if "password" in methods:
            user = await self._password(ident.get("password"))
        elif "token" in methods:
            parent = self._token_method(ident.get("token"))
            user = parent.user
        elif "application_credential" in methods:
            app_cred, user = await self._app_credential(ident.get("application_credential"))
        else:
            raise Unauthorized(
                f"Unsupported authentication method: {', '.join(map(str, methods))}."
            )
        scope_type: str | None
        scope_id: str | None
        if app_cred is not None:
            if auth.get("scope") not in (None, {"project": {"id": app_cred.project_id}}):
                raise Unauthorized("An application credential is already scoped to its project.")
            scope_type, scope_id = "project", app_cred.project_id
        else:
            scope_type, scope_id = self._scope(auth.get("scope"), user)
        methods_used = tuple(
            m for m in ("password", "token", "application_credential") if m in methods
        )
        if parent is not None:
            methods_used = tuple(dict.fromkeys((*parent.methods, "token")))
        now = time.time()
        expires = now + self.expiration
        if parent is not None:
            expires = min(expires, parent.expires_at)  # rescoping never extends a token
        if app_cred is not None and app_cred.expires_at:
            expires = min(expires, _epoch(app_cred.expires_at))
        payload = TokenPayload(
            user_id=user.id,
            methods=methods_used[:1] if parent is None else methods_used,
            scope_type=scope_type,
            scope_id=scope_id,
            issued_at=now,
            expires_at=expires,
            audit_ids=(new_audit_id(),) + (parent.audit_ids[:1] if parent else ()),
            app_cred_id=app_cred.id if app_cred else None,
        )
        token_id = self.keys.seal(payload)
        try:
            return self._resolve(token_id, payload)
        except Unauthorized:
            raise Unauthorized(
                f"User {user.id} has no access to the requested {scope_type} {scope_id}."
            ) from None

    async def _password(self, spec: Any) -> User:
        if not isinstance(spec, dict) or not isinstance(spec.get("user"), dict):
            raise Invalid("Expecting to find user in password.")
        ref = spec["user"]
        password = ref.get("password")
        if not isinstance(password, str):
            raise Invalid("Expecting to find password in user.")
        user: User | None = None
        try:
            if ref.get("id"):
                user = self.identity.user(ref["id"])
            elif ref.get("name"):
                domain = self._domain_ref(ref.get("domain"))
                user = self.identity.user_by_name(ref["name"], domain.id)
            else:
                raise Invalid("Expecting to find id or name in user.")
        except NotFound:
            user = None
        stored = self.identity.password_hash(user.id) if user else None
        # Verify even for an unknown user, so timing does not reveal which names exist.
        if not await self.identity.passwords.verify(stored, password) or user is None:
            raise Unauthorized(_DENIED)
        if not user.enabled or not self.identity.domain(user.domain_id).enabled:
            raise Unauthorized(_DENIED)
        return user

    def _token_method(self, spec: Any) -> Token:
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            raise Invalid("Expecting to find id in token.")
        token = self.validate(spec["id"])
        if token.app_cred is not None:
            raise Forbidden("A token from an application credential cannot be rescoped.")
        return token

    async def _app_credential(self, spec: Any) -> tuple[AppCredential, User]:
        if not isinstance(spec, dict) or not isinstance(spec.get("secret"), str):
            raise Invalid("Expecting to find secret in application_credential.")
        try:
            if spec.get("id"):
                cred = self.credentials.app_credential(spec["id"])
            elif spec.get("name") and isinstance(spec.get("user"), dict):
                ref = spec["user"]
                if ref.get("id"):
                    owner = self.identity.user(ref["id"])
                else:
                    owner = self.identity.user_by_name(
                        ref.get("name") or "", self._domain_ref(ref.get("domain")).id
                    )
                cred = self.credentials.app_credential_by_name(owner.id, spec["name"])
            else:
                raise Invalid("Expecting to find id, or name and user, in application_credential.")
        except NotFound:
            await self.identity.passwords.verify(None, spec["secret"])
            raise Unauthorized(_DENIED) from None
        if not await self.identity.passwords.verify(
            self.credentials.app_secret_hash(cred.id), spec["secret"]
        ):
            raise Unauthorized(_DENIED)
        if cred.expires_at and _epoch(cred.expires_at) <= time.time():
            raise Unauthorized("The application credential has expired.")
        user = self.identity.user(cred.user_id)
        if not user.enabled:
            raise Unauthorized(_DENIED)
        return cred, user

    def _domain_ref(self, ref: Any) -> Domain:
        if not isinstance(ref, dict):
            raise Invalid("Expecting to find domain id or name.")
        try:
            if ref.get("id"):
                return self.identity.domain(ref["id"])
            return self.identity.domain_by_name(ref.get("name") or "")
        except NotFound:
            raise Unauthorized(_DENIED) from None

    def _scope(self, scope: Any, user: User) -> tuple[str | None, str | None]:
        if scope is None:
            # Keystone scopes to the user's default project when no scope is asked for.
            if user.default_project_id and self.identity.roles_on(
                user.id, "project", user.default_project_id
            ):
                return "project", user.default_project_id
            return None, None
        if scope == "unscoped":
            return None, None
        if not isinstance(scope, dict) or len(scope) != 1:
            raise Invalid("scope must name exactly one of project, domain or system.")
        try:
            if "project" in scope:
                ref = scope["project"] or {}
                if ref.get("id"):
                    project = self.identity.project(ref["id"])
                else:
                    domain = self._domain_ref(ref.get("domain"))
                    project = self.identity.project_by_name(ref.get("name") or "", domain.id)
                return "project", project.id
            if "domain" in scope:
                return "domain", self._domain_ref(scope["domain"]).id
        except NotFound:
            raise Unauthorized(_DENIED) from None
        if "system" in scope:
            if scope["system"] != {"all": True}:
                raise Invalid("Only system scope {'all': true} exists.")
            return "system", "all"
        raise Invalid("scope must name exactly one of project, domain or system.")

    # -- validation and revocation -------------------------------------------------------------

    def validate(self, token_id: str) -> Token:
        """The token's current meaning, or Unauthorized if it is garbled, expired, revoked or void.

        Validation is the hot path of every API call, so a resolved token is cached until the
        database changes at all (any write on this process's one connection bumps
        `total_changes`: a revocation, a role removed, a user disabled), or it expires."""
        changes = self.db.conn.total_changes
        cached = self._cache.get(token_id)
        if cached is not None and cached[1] == changes and cached[0].expires_at > time.time():
            return cached[0]
        payload = self.keys.open(token_id)
        if payload is None:
            raise Unauthorized("The token is not valid.")
        token = self._resolve(token_id, payload)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[token_id] = (token, changes)
        return token

    def _resolve(self, token_id: str, p: TokenPayload) -> Token:
        if p.expires_at <= time.time():
            raise Unauthorized("The token has expired.")
        if any(a in self._revoked_audit for a in p.audit_ids):
            raise Unauthorized("The token has been revoked.")
        if p.issued_at <= self._revoked_users.get(p.user_id, 0.0):
            raise Unauthorized("The token has been revoked.")
        try:
            user = self.identity.user(p.user_id)
            user_domain = self.identity.domain(user.domain_id)
            if not user.enabled or not user_domain.enabled:
                raise Unauthorized("The user is disabled.")
            project = domain = project_domain = app_cred = None
            roles: tuple[Role, ...] = ()
            if p.scope_type == "project":
                project = self.identity.project(p.scope_id or "")
                project_domain = self.identity.domain(project.domain_id)
                if not project.enabled or not project_domain.enabled:
                    raise Unauthorized("The project is disabled.")
                roles = self.identity.roles_on(user.id, "project", project.id)
                if p.app_cred_id:
                    app_cred = self.credentials.app_credential(p.app_cred_id)
                    held = {r.id for r in roles}
                    roles = tuple(r for r in app_cred.roles if r.id in held)
            elif p.scope_type == "domain":
                domain = self.identity.domain(p.scope_id or "")
                roles = self.identity.roles_on(user.id, "domain", domain.id)
            elif p.scope_type == "system":
                roles = self.identity.roles_on(user.id, "system", "all")
        except NotFound:
            raise Unauthorized("The token refers to something that no longer exists.") from None
        if p.scope_type is not None and not roles:
            raise Unauthorized("The user holds no role on the token's scope any more.")
        return Token(
            id=token_id,
            user=user,
            user_domain=user_domain,
            methods=p.methods,
            issued_at=p.issued_at,
            expires_at=p.expires_at,
            audit_ids=p.audit_ids,
            roles=roles,
            project=project,
            project_domain=project_domain,
            domain=domain,
            system=p.scope_type == "system",
            app_cred=app_cred,
        )

    def context(self, token_id: str, request_id: str = "") -> Context:
        """The middleware's resolver: a token becomes the caller every service method takes."""
        token = self.validate(token_id)
        return context_of(token, request_id)

    def revoke(self, token: Token) -> None:
        audit_id = token.audit_ids[0]
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO revocations (audit_id, user_id, issued_before, expires_at) VALUES (?,NULL,?,?)",
                [audit_id, time.time(), token.expires_at],
            )
        self._remember(audit_id, None, 0.0)

    def revoke_user(self, user_id: str) -> None:
        """End every token the user holds now (password change, disable, delete)."""
        now = time.time()
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO revocations (audit_id, user_id, issued_before, expires_at) VALUES (NULL,?,?,?)",
                [user_id, now, now + self.expiration],
            )
        self._remember(None, user_id, now)

    def _remember(self, audit_id: str | None, user_id: str | None, issued_before: float) -> None:
        if audit_id:
            self._revoked_audit.add(audit_id)
        if user_id:
            self._revoked_users[user_id] = max(issued_before, self._revoked_users.get(user_id, 0.0))


def context_of(token: Token, request_id: str = "") -> Context:
    project: Project | None = token.project
    return Context(
        user_id=token.user.id,
        user_name=token.user.name,
        user_domain_id=token.user.domain_id,
        roles=frozenset(r.name for r in token.roles),
        project_id=project.id if project else None,
        project_name=project.name if project else None,
        project_domain_id=project.domain_id if project else None,
        domain_id=token.domain.id if token.domain else None,
        system=token.system,
        app_cred_id=token.app_cred.id if token.app_cred else None,
        request_id=request_id,
        token=token.id,
        audit_id=token.audit_ids[0],
    )


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


__all__ = ["Auth", "context_of", "iso"]

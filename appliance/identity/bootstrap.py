"""First start: the Default domain, the standard roles, the admin project and user, and the client
files (`admin-openrc.sh`, `clouds.yaml`) that let the `openstack` CLI in."""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

from appliance.config import Config
from appliance.identity.models import DEFAULT_DOMAIN_ID, iso, new_id, now
from appliance.identity.service import Identity

log = logging.getLogger("nube.identity")

ROLES = ("admin", "member", "reader", "ResellerAdmin")


def needs_bootstrap(identity: Identity) -> bool:
    return identity._one("SELECT 1 FROM domains WHERE id = ?", [DEFAULT_DOMAIN_ID]) is None


def bootstrap(identity: Identity, admin_password: str) -> str:
    """Seed an empty identity store in one transaction; returns the admin user's id."""
    db = identity.db
    stamp = iso(now())
    user_id, project_id = new_id(), new_id()
    password_hash = identity.passwords.hash_sync(admin_password)
    with db.atomic():
        db.execute(
            "INSERT INTO domains (id, name, description, enabled, created_at) VALUES (?,?,?,1,?)",
            [DEFAULT_DOMAIN_ID, "Default", "The default domain", stamp],
        )
        role_ids = {}
        for name in ROLES:
            role_ids[name] = new_id()
            db.execute(
                "INSERT INTO roles (id, name, description, created_at) VALUES (?,?,'',?)",
                [role_ids[name], name, stamp],
            )
        db.execute(
            "INSERT INTO projects (id, name, domain_id, description, enabled, tags, created_at) "
            "VALUES (?,?,?,?,1,'[]',?)",
            [
                project_id,
                "admin",
                DEFAULT_DOMAIN_ID,
                "Bootstrap project for the cloud admin",
                stamp,
            ],
        )
        db.execute(
            "INSERT INTO users (id, name, domain_id, enabled, password_hash, default_project_id, "
            "extra, created_at) VALUES (?,?,?,1,?,?,'{}',?)",
            [user_id, "admin", DEFAULT_DOMAIN_ID, password_hash, project_id, stamp],
        )
        for target_type, target_id in (("project", project_id), ("system", "all")):
            db.execute(
                "INSERT INTO role_assignments (user_id, target_type, target_id, role_id) "
                "VALUES (?,?,?,?)",
                [user_id, target_type, target_id, role_ids["admin"]],
            )
    log.info(
        "bootstrap: created domain Default, roles %s, project admin, user admin", ", ".join(ROLES)
    )
    return user_id


def admin_password_from_env() -> str:
    return os.environ.get("NUBE_ADMIN_PASSWORD") or secrets.token_urlsafe(18)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def client_auth_url(config: Config) -> str:
    if config.public_url:
        return config.public_url.rstrip("/") + "/identity"
    host = config.bind
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}/identity"


def write_client_files(config: Config, password: str) -> None:
    auth_url = client_auth_url(config)
    q = (
        json.dumps
    )  # JSON strings are valid shell-safe-enough YAML scalars; shell gets single quotes
    shell = password.replace("'", "'\"'\"'")
    _write_private(
        config.data_dir / "admin-openrc.sh",
        "# Nube admin credentials for the openstack CLI: source this file.\n"
        f"export OS_AUTH_URL={auth_url}\n"
        "export OS_USERNAME=admin\n"
        f"export OS_PASSWORD='{shell}'\n"
        "export OS_PROJECT_NAME=admin\n"
        "export OS_USER_DOMAIN_NAME=Default\n"
        "export OS_PROJECT_DOMAIN_NAME=Default\n"
        "export OS_IDENTITY_API_VERSION=3\n"
        f"export OS_REGION_NAME={config.region}\n"
        "export OS_INTERFACE=public\n",
    )
    _write_private(
        config.data_dir / "clouds.yaml",
        "clouds:\n"
        "  nube:\n"
        "    auth:\n"
        f"      auth_url: {q(auth_url)}\n"
        "      username: admin\n"
        f"      password: {q(password)}\n"
        "      project_name: admin\n"
        "      user_domain_name: Default\n"
        "      project_domain_name: Default\n"
        f"    region_name: {q(config.region)}\n"
        "    identity_api_version: 3\n"
        "    interface: public\n",
    )

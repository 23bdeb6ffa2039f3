"""Where `nube tui` finds credentials: clouds.yaml and OS_* variables, read as the openstack CLI does.

openstacksdk's config loader (openstack/config/loader.py) looks for clouds.yaml in
OS_CLIENT_CONFIG_FILE, then ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml;
a cloud picked with --os-cloud or OS_CLOUD has its `auth` section overridden by nothing, while
without a cloud the OS_* variables alone describe one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml


class CredentialsError(Exception):
    """clouds.yaml is missing the named cloud or is not valid YAML."""


@dataclass(frozen=True, slots=True)
class Credentials:
    auth_url: str
    username: str
    password: str
    project_name: str = ""
    user_domain: str = "Default"
    project_domain: str = "Default"
    region: str = ""
    interface: str = "public"

    @property
    def complete(self) -> bool:
        return bool(self.auth_url and self.username and self.password)

    def with_project(self, project_name: str) -> Credentials:
        return replace(self, project_name=project_name)


def clouds_yaml_paths(env: Mapping[str, str]) -> list[Path]:
    paths = [Path(env["OS_CLIENT_CONFIG_FILE"])] if env.get("OS_CLIENT_CONFIG_FILE") else []
    home = Path(env.get("HOME", str(Path.home())))
    return [
        *paths,
        Path.cwd() / "clouds.yaml",
        home / ".config" / "openstack" / "clouds.yaml",
        Path("/etc/openstack/clouds.yaml"),
    ]


def _from_cloud(entry: Mapping[str, Any]) -> Credentials:
    auth = entry.get("auth") or {}
    return Credentials(
        auth_url=str(auth.get("auth_url", "")),
        username=str(auth.get("username", "")),
        password=str(auth.get("password", "")),
        project_name=str(auth.get("project_name", "")),
        user_domain=str(auth.get("user_domain_name") or auth.get("domain_name") or "Default"),
        project_domain=str(auth.get("project_domain_name") or "Default"),
        region=str(entry.get("region_name", "")),
        interface=str(entry.get("interface", "public")),
    )


def _from_env(env: Mapping[str, str]) -> Credentials:
    return Credentials(
        auth_url=env.get("OS_AUTH_URL", ""),
        username=env.get("OS_USERNAME", ""),
        password=env.get("OS_PASSWORD", ""),
        project_name=env.get("OS_PROJECT_NAME") or env.get("OS_TENANT_NAME", ""),
        user_domain=env.get("OS_USER_DOMAIN_NAME") or "Default",
        project_domain=env.get("OS_PROJECT_DOMAIN_NAME") or "Default",
        region=env.get("OS_REGION_NAME", ""),
        interface=env.get("OS_INTERFACE", "public"),
    )


def find_credentials(cloud: str | None, env: Mapping[str, str] = os.environ) -> Credentials | None:
    """The named cloud (or OS_CLOUD) from the first clouds.yaml holding it, else OS_* variables.

    None when nothing usable is set: the TUI then shows its login form."""
    name = cloud or env.get("OS_CLOUD")
    if name:
        for path in clouds_yaml_paths(env):
            if not path.is_file():
                continue
            try:
                doc = yaml.safe_load(path.read_text()) or {}
            except (yaml.YAMLError, OSError) as exc:
                raise CredentialsError(f"{path}: {exc}") from exc
            entry = (doc.get("clouds") or {}).get(name)
            if entry is not None:
                return _from_cloud(entry)
        raise CredentialsError(f"cloud {name!r} is in no clouds.yaml")
    creds = _from_env(env)
    return creds if creds.auth_url else None

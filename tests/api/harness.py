"""A real `nube serve` on 127.0.0.1, and the real `openstack` CLI to drive it."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openstack as sdk
import requests

BIN = Path(sys.prefix) / "bin"
ADMIN_PASSWORD = "admin-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unused_cidr() -> str:
    """A /24 in 100.64.0.0/10 that no route of this host touches (test Nubes run side by side)."""
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True).stdout  # fmt: skip
    taken = [ipaddress.ip_network(w, strict=False) for line in routes.splitlines()
             for w in line.split()[:1] if w[0].isdigit()]  # fmt: skip
    for _ in range(100):
        cidr = ipaddress.ip_network(f"100.{random.randint(64, 127)}.{random.randint(0, 255)}.0/24")
        if not any(cidr.overlaps(t) for t in taken):
            return str(cidr)
    raise RuntimeError("no free /24 in 100.64.0.0/10")


@dataclass
class Nube:
    data_dir: Path
    port: int = field(default_factory=free_port)
    s3_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity"

    @property
    def log(self) -> str:
        path = self.data_dir.parent / f"{self.data_dir.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        # No default networks unless a test asks (NUBE_PUBLIC_CIDR in extra_env): a public network
        # gives the host an address, and every test Nube on this machine would need its own CIDR.
        env = {**os.environ, "NUBE_ADMIN_PASSWORD": ADMIN_PASSWORD, "NUBE_PUBLIC_CIDR": "",
               **self.extra_env}  # fmt: skip
        log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        self.proc = subprocess.Popen(
            [
                str(BIN / "nube"),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--s3-port",
                str(self.s3_port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nube serve exited with {self.proc.returncode}:\n{self.log}")
            try:
                if requests.get(self.auth_url, timeout=5).status_code == 300:
                    return
            except requests.RequestException:  # not listening yet, or still starting up
                pass
            time.sleep(0.1)
        raise RuntimeError(f"nube serve did not answer in 30 s:\n{self.log}")

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def env(
        self, user: str = "admin", password: str = ADMIN_PASSWORD, project: str | None = "admin"
    ) -> dict[str, str]:
        """OS_* variables as admin-openrc.sh sets them, for any user."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(
            OS_AUTH_URL=self.auth_url,
            OS_USERNAME=user,
            OS_PASSWORD=password,
            OS_USER_DOMAIN_NAME="Default",
            OS_IDENTITY_API_VERSION="3",
            OS_REGION_NAME="RegionOne",
            OS_INTERFACE="public",
        )
        if project:
            env.update(OS_PROJECT_NAME=project, OS_PROJECT_DOMAIN_NAME="Default")
        return env

    def token(
        self, user: str = "admin", password: str = ADMIN_PASSWORD, project: str | None = "admin"
    ) -> str:
        body: dict[str, Any] = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": user, "domain": {"name": "Default"}, "password": password}
                    },
                }
            }
        }
        if project:
            body["auth"]["scope"] = {"project": {"name": project, "domain": {"name": "Default"}}}
        r = requests.post(f"{self.auth_url}/v3/auth/tokens", json=body, timeout=10)
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"]


def openstack(env: dict[str, str], *args: str, check: bool = True) -> Any:
    """Run the real `openstack` CLI; JSON output parsed when -f json is among the args."""
    result = subprocess.run(
        [str(BIN / "openstack"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"openstack {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
        )
    if not check:
        return result
    return json.loads(result.stdout) if "json" in args and result.stdout.strip() else result.stdout


@dataclass(frozen=True)
class Tenant:
    name: str
    project_id: str
    user_id: str

    def env(self, nube: Nube) -> dict[str, str]:
        return nube.env(self.name, "pw", self.name)

    def headers(self, nube: Nube) -> dict[str, str]:
        return {"X-Auth-Token": nube.token(self.name, "pw", self.name)}

    def sdk(self, nube: Nube) -> sdk.connection.Connection:
        return sdk.connect(
            auth_url=nube.auth_url,
            username=self.name,
            password="pw",
            project_name=self.name,
            user_domain_name="Default",
            project_domain_name="Default",
            region_name="RegionOne",
        )


def make_tenant(nube: Nube, prefix: str, role: str = "member") -> Tenant:
    admin = {"X-Auth-Token": nube.token()}
    base = nube.auth_url
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    project = requests.post(
        f"{base}/v3/projects", json={"project": {"name": name}}, headers=admin, timeout=5
    ).json()["project"]
    user = requests.post(
        f"{base}/v3/users",
        json={"user": {"name": name, "password": "pw"}},
        headers=admin,
        timeout=5,
    ).json()["user"]
    role_id = requests.get(f"{base}/v3/roles?name={role}", headers=admin, timeout=5).json()[
        "roles"
    ][0]["id"]
    r = requests.put(
        f"{base}/v3/projects/{project['id']}/users/{user['id']}/roles/{role_id}",
        headers=admin,
        timeout=5,
    )
    assert r.status_code == 204
    return Tenant(name, project["id"], user["id"])

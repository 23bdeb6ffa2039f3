"""`nube serve` as a process: first start, restart, a second instance, SIGTERM, logs, client files."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.api.harness import ADMIN_PASSWORD, BIN, Nube, openstack


@pytest.fixture
def own_nube(tmp_path: Path) -> Iterator[Nube]:
    server = Nube(tmp_path / "data")
    server.start()
    yield server
    server.stop()


def test_first_start_writes_openrc_with_mode_0600_and_every_variable(own_nube: Nube) -> None:
    rc = own_nube.data_dir / "admin-openrc.sh"
    assert stat.S_IMODE(rc.stat().st_mode) == 0o600
    text = rc.read_text()
    for name in (
        "OS_AUTH_URL",
        "OS_USERNAME",
        "OS_PASSWORD",
        "OS_PROJECT_NAME",
        "OS_USER_DOMAIN_NAME",
        "OS_PROJECT_DOMAIN_NAME",
        "OS_IDENTITY_API_VERSION=3",
        "OS_REGION_NAME",
    ):
        assert f"export {name}" in text
    assert f"OS_AUTH_URL={own_nube.auth_url}" in text


def test_sourced_openrc_works_with_the_cli(own_nube: Nube) -> None:
    script = f". {own_nube.data_dir / 'admin-openrc.sh'} && {BIN / 'openstack'} token issue -f value -c user_id"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    result = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) == 32


def test_clouds_yaml_defines_cloud_nube_that_the_cli_can_use(own_nube: Nube) -> None:
    path = own_nube.data_dir / "clouds.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text())["clouds"]["nube"]["auth"]["password"] == ADMIN_PASSWORD
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(path)
    assert (
        openstack(env, "--os-cloud", "nube", "project", "list", "-f", "json")[0]["Name"] == "admin"
    )


def test_restart_keeps_projects_users_and_tokens(own_nube: Nube) -> None:
    token = own_nube.token()
    h = {"X-Auth-Token": token}
    made = requests.post(
        f"{own_nube.auth_url}/v3/projects", json={"project": {"name": "kept"}}, headers=h, timeout=5
    )
    assert made.status_code == 201
    assert own_nube.stop() == 0
    own_nube.start()
    r = requests.get(f"{own_nube.auth_url}/v3/projects?name=kept", headers=h, timeout=5)
    assert r.status_code == 200 and [p["id"] for p in r.json()["projects"]] == [
        made.json()["project"]["id"]
    ]


def test_revocation_survives_a_restart(own_nube: Nube) -> None:
    token = own_nube.token()
    h = {"X-Auth-Token": token, "X-Subject-Token": token}
    assert (
        requests.delete(f"{own_nube.auth_url}/v3/auth/tokens", headers=h, timeout=5).status_code
        == 204
    )
    own_nube.stop()
    own_nube.start()
    assert (
        requests.get(
            f"{own_nube.auth_url}/v3/projects", headers={"X-Auth-Token": token}, timeout=5
        ).status_code
        == 401
    )


def test_restart_does_not_rebootstrap_or_change_the_admin_password(own_nube: Nube) -> None:
    before = (own_nube.data_dir / "admin-openrc.sh").read_text()
    own_nube.stop()
    own_nube.extra_env["NUBE_ADMIN_PASSWORD"] = "another"
    own_nube.start()
    assert (own_nube.data_dir / "admin-openrc.sh").read_text() == before
    assert own_nube.token("admin", ADMIN_PASSWORD)


def test_second_serve_on_the_same_data_dir_refuses_with_a_clear_message(own_nube: Nube) -> None:
    result = subprocess.run(
        [
            str(BIN / "nube"),
            "serve",
            "--data-dir",
            str(own_nube.data_dir),
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--s3-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert (
        "already using" in result.stderr
        and str(own_nube.proc.pid if own_nube.proc else "") in result.stderr
    )
    assert requests.get(own_nube.auth_url, timeout=5).status_code == 300


def test_sigterm_stops_cleanly_with_exit_status_0(own_nube: Nube) -> None:
    assert own_nube.stop() == 0
    assert "stopped" in own_nube.log


def test_one_log_line_per_request_with_status_and_request_id(own_nube: Nube) -> None:
    r = requests.get(f"{own_nube.auth_url}/v3/projects", timeout=5)
    own_nube.stop()
    lines = [
        line for line in own_nube.log.splitlines() if r.headers["x-openstack-request-id"] in line
    ]
    assert len(lines) == 1
    assert "GET /identity/v3/projects 401" in lines[0]


def test_s3_port_listens_and_answers_in_s3_xml(own_nube: Nube) -> None:
    r = requests.get(f"http://127.0.0.1:{own_nube.s3_port}/", timeout=5)
    assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text

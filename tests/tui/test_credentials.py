"""Credentials are found as the openstack CLI finds them: a clouds.yaml cloud, else OS_* variables."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.api.harness import BIN
from tui.credentials import CredentialsError, find_credentials

CLOUDS = """
clouds:
  nube:
    auth:
      auth_url: http://10.0.0.1:8080/identity
      username: alice
      password: secret
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
"""


def test_a_named_cloud_comes_from_os_client_config_file(tmp_path: Path) -> None:
    path = tmp_path / "clouds.yaml"
    path.write_text(CLOUDS)
    env = {"OS_CLIENT_CONFIG_FILE": str(path), "HOME": str(tmp_path)}
    creds = find_credentials("nube", env)
    assert creds is not None
    assert (creds.auth_url, creds.username, creds.password, creds.project_name) == (
        "http://10.0.0.1:8080/identity", "alice", "secret", "demo")  # fmt: skip
    assert creds.region == "RegionOne"


def test_os_cloud_picks_the_cloud_when_no_flag_is_given(tmp_path: Path) -> None:
    config = tmp_path / ".config" / "openstack"
    config.mkdir(parents=True)
    (config / "clouds.yaml").write_text(CLOUDS)
    creds = find_credentials(None, {"OS_CLOUD": "nube", "HOME": str(tmp_path)})
    assert creds is not None and creds.username == "alice"


def test_an_unknown_cloud_is_an_error_not_a_silent_login_form(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="other"):
        find_credentials("other", {"HOME": str(tmp_path)})


def test_os_variables_describe_the_cloud_without_clouds_yaml(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "OS_AUTH_URL": "http://127.0.0.1:8080/identity",
        "OS_USERNAME": "bob",
        "OS_PASSWORD": "pw",
        "OS_PROJECT_NAME": "p1",
        "OS_USER_DOMAIN_NAME": "Default",
    }
    creds = find_credentials(None, env)
    assert creds is not None and creds.complete
    assert (creds.username, creds.project_name) == ("bob", "p1")


def test_nothing_set_means_the_login_form(tmp_path: Path) -> None:
    assert find_credentials(None, {"HOME": str(tmp_path)}) is None


def test_nube_tui_names_a_missing_cloud_and_exits_2(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")}
    result = subprocess.run([str(BIN / "nube"), "tui", "--cloud", "nosuch"], env=env,
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "nosuch" in result.stderr

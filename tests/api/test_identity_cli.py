"""The README's first steps, and identity features, through the real `openstack` CLI."""

from __future__ import annotations

import uuid

import pytest
import requests

from appliance.app import CATALOG_SERVICES
from tests.api.harness import ADMIN_PASSWORD, Nube, openstack


@pytest.fixture(scope="module")
def demo(nube: Nube) -> dict[str, str]:
    """The README flow: project create, user create --project --password, role add member."""
    admin = nube.env()
    name = f"demo-{uuid.uuid4().hex[:6]}"
    project = openstack(admin, "project", "create", name, "-f", "json")
    user = openstack(
        admin,
        "user",
        "create",
        "--project",
        name,
        "--password",
        "pw",
        f"alice-{name}",
        "-f",
        "json",
    )
    openstack(admin, "role", "add", "--project", name, "--user", user["name"], "member")
    return {
        "project": name,
        "project_id": project["id"],
        "user": user["name"],
        "user_id": user["id"],
    }


def test_token_issue_scopes_the_admin_to_the_admin_project(nube: Nube) -> None:
    token = openstack(nube.env(), "token", "issue", "-f", "json")
    projects = openstack(nube.env(), "project", "list", "-f", "json")
    admin_project = next(p for p in projects if p["Name"] == "admin")
    assert token["project_id"] == admin_project["ID"]
    assert token["id"] and token["expires"]


def test_catalog_list_shows_identity_on_three_interfaces_in_regionone(nube: Nube) -> None:
    catalog = openstack(nube.env(), "catalog", "list", "-f", "json")
    identity = next(entry for entry in catalog if entry["Type"] == "identity")
    assert identity["Name"] == "keystone"
    interfaces = {(e["interface"], e["region"], e["url"]) for e in identity["Endpoints"]}
    assert interfaces == {(i, "RegionOne", nube.auth_url) for i in ("public", "internal", "admin")}


def test_catalog_lists_exactly_the_services_this_process_serves(nube: Nube) -> None:
    catalog = openstack(nube.env(), "catalog", "list", "-f", "json")
    assert sorted(entry["Type"] for entry in catalog) == sorted(s.type for s in CATALOG_SERVICES)
    # Each URL is live: discovery documents answer anonymously (200/300); Swift accounts and S3 want
    # credentials first (401/403), as real Swift and S3 do.
    expected = {"object-store": (401,), "s3": (403,)}
    for entry in catalog:
        url = entry["Endpoints"][0]["url"]
        assert requests.get(url, timeout=5).status_code in expected.get(
            entry["Type"], (200, 300)
        ), url


def test_new_member_can_issue_a_token_in_their_project(nube: Nube, demo: dict[str, str]) -> None:
    token = openstack(nube.env(demo["user"], "pw", demo["project"]), "token", "issue", "-f", "json")
    assert token["project_id"] == demo["project_id"]
    assert token["user_id"] == demo["user_id"]


def test_role_assignment_list_shows_the_member_grant_by_name(
    nube: Nube, demo: dict[str, str]
) -> None:
    rows = openstack(
        nube.env(),
        "role",
        "assignment",
        "list",
        "--project",
        demo["project"],
        "--names",
        "-f",
        "json",
    )
    assert [(r["Role"], r["User"], r["Project"]) for r in rows] == [
        ("member", f"{demo['user']}@Default", f"{demo['project']}@Default")
    ]


def test_effective_assignments_include_implied_reader_role(
    nube: Nube, demo: dict[str, str]
) -> None:
    rows = openstack(
        nube.env(),
        "role",
        "assignment",
        "list",
        "--project",
        demo["project"],
        "--effective",
        "--names",
        "-f",
        "json",
    )
    assert sorted(r["Role"] for r in rows) == ["member", "reader"]


def test_role_remove_ends_the_users_access_to_the_project(nube: Nube) -> None:
    admin = nube.env()
    name = f"gone-{uuid.uuid4().hex[:6]}"
    openstack(admin, "project", "create", name)
    openstack(admin, "user", "create", "--password", "pw", f"u-{name}")
    openstack(admin, "role", "add", "--project", name, "--user", f"u-{name}", "member")
    token = nube.token(f"u-{name}", "pw", name)
    openstack(admin, "role", "remove", "--project", name, "--user", f"u-{name}", "member")
    r = requests.get(
        f"{nube.auth_url}/v3/auth/projects", headers={"X-Auth-Token": token}, timeout=5
    )
    assert r.status_code == 401


def test_project_set_and_delete(nube: Nube) -> None:
    admin = nube.env()
    name = f"p-{uuid.uuid4().hex[:6]}"
    openstack(admin, "project", "create", "--description", "first", name)
    openstack(admin, "project", "set", "--description", "second", "--disable", name)
    shown = openstack(admin, "project", "show", name, "-f", "json")
    assert (shown["description"], shown["enabled"]) == ("second", False)
    openstack(admin, "project", "delete", name)
    assert openstack(admin, "project", "show", name, check=False).returncode != 0


def test_user_delete_removes_the_user(nube: Nube) -> None:
    admin = nube.env()
    name = f"temp-{uuid.uuid4().hex[:6]}"
    openstack(admin, "user", "create", "--password", "pw", name)
    openstack(admin, "user", "delete", name)
    names = [u["Name"] for u in openstack(admin, "user", "list", "-f", "json")]
    assert name not in names


def test_role_create_list_delete(nube: Nube) -> None:
    admin = nube.env()
    name = f"role-{uuid.uuid4().hex[:6]}"
    openstack(admin, "role", "create", name)
    assert name in [r["Name"] for r in openstack(admin, "role", "list", "-f", "json")]
    openstack(admin, "role", "delete", name)
    assert name not in [r["Name"] for r in openstack(admin, "role", "list", "-f", "json")]


def test_application_credential_authenticates_and_stops_when_deleted(
    nube: Nube, demo: dict[str, str]
) -> None:
    alice = nube.env(demo["user"], "pw", demo["project"])
    cred = openstack(alice, "application", "credential", "create", "ci-cred", "-f", "json")
    assert cred["Secret"]
    app_env = {k: v for k, v in alice.items() if not k.startswith("OS_")}
    app_env.update(
        OS_AUTH_TYPE="v3applicationcredential",
        OS_AUTH_URL=nube.auth_url,
        OS_APPLICATION_CREDENTIAL_ID=cred["ID"],
        OS_APPLICATION_CREDENTIAL_SECRET=cred["Secret"],
        OS_IDENTITY_API_VERSION="3",
        OS_REGION_NAME="RegionOne",
    )
    token = openstack(app_env, "token", "issue", "-f", "json")
    assert token["project_id"] == demo["project_id"]
    assert token["user_id"] == demo["user_id"]
    openstack(alice, "application", "credential", "delete", "ci-cred")
    assert openstack(app_env, "token", "issue", check=False).returncode != 0


def test_application_credential_with_wrong_secret_is_refused(
    nube: Nube, demo: dict[str, str]
) -> None:
    alice = nube.env(demo["user"], "pw", demo["project"])
    cred = openstack(alice, "application", "credential", "create", "wrong-secret", "-f", "json")
    body = {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": cred["ID"], "secret": "nope"},
            }
        }
    }
    r = requests.post(f"{nube.auth_url}/v3/auth/tokens", json=body, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == 401


def test_ec2_credentials_create_list_show_delete(nube: Nube, demo: dict[str, str]) -> None:
    alice = nube.env(demo["user"], "pw", demo["project"])
    created = openstack(alice, "ec2", "credentials", "create", "-f", "json")
    assert created["project_id"] == demo["project_id"] and len(created["secret"]) == 32
    listed = openstack(alice, "ec2", "credentials", "list", "-f", "json")
    assert [c["Access"] for c in listed] == [created["access"]]
    shown = openstack(alice, "ec2", "credentials", "show", created["access"], "-f", "json")
    assert shown["secret"] == created["secret"]
    openstack(alice, "ec2", "credentials", "delete", created["access"])
    assert openstack(alice, "ec2", "credentials", "list", "-f", "json") == []


def test_ec2_credentials_of_one_user_are_invisible_to_another_member(
    nube: Nube, demo: dict[str, str]
) -> None:
    admin = nube.env()
    alice = nube.env(demo["user"], "pw", demo["project"])
    created = openstack(alice, "ec2", "credentials", "create", "-f", "json")
    other = f"bob-{uuid.uuid4().hex[:6]}"
    openstack(admin, "project", "create", other)
    openstack(admin, "user", "create", "--password", "pw", other)
    openstack(admin, "role", "add", "--project", other, "--user", other, "member")
    bob = nube.env(other, "pw", other)
    seen = openstack(bob, "ec2", "credentials", "list", "--user", demo["user_id"], check=False)
    assert seen.returncode != 0 and "403" in seen.stderr
    r = requests.delete(
        f"{nube.auth_url}/v3/users/{demo['user_id']}/credentials/OS-EC2/{created['access']}",
        headers={"X-Auth-Token": nube.token(other, "pw", other)},
        timeout=5,
    )
    assert r.status_code == 403
    assert (
        openstack(alice, "ec2", "credentials", "show", created["access"], "-f", "json")["access"]
        == created["access"]
    )


def test_user_password_set_revokes_old_tokens_and_the_new_password_works(nube: Nube) -> None:
    admin = nube.env()
    name = f"pwuser-{uuid.uuid4().hex[:6]}"
    openstack(admin, "project", "create", name)
    openstack(admin, "user", "create", "--password", "old-pw", name)
    openstack(admin, "role", "add", "--project", name, "--user", name, "member")
    old_token = nube.token(name, "old-pw", name)
    openstack(
        nube.env(name, "old-pw", name),
        "user",
        "password",
        "set",
        "--original-password",
        "old-pw",
        "--password",
        "new-pw",
    )
    r = requests.get(
        f"{nube.auth_url}/v3/auth/projects", headers={"X-Auth-Token": old_token}, timeout=5
    )
    assert r.status_code == 401
    assert nube.token(name, "new-pw", name)
    bad = requests.post(
        f"{nube.auth_url}/v3/auth/tokens",
        timeout=5,
        json={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": name, "domain": {"id": "default"}, "password": "old-pw"}
                    },
                }
            }
        },
    )
    assert bad.status_code == 401


def test_admin_password_from_environment_is_the_bootstrap_password(nube: Nube) -> None:
    assert nube.token("admin", ADMIN_PASSWORD, "admin")

"""Tenant isolation and Keystone's default policy, through openstacksdk and raw HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import openstack
import pytest
import requests
from openstack import exceptions as sdk_exc

from tests.api.harness import ADMIN_PASSWORD, Nube


@dataclass(frozen=True)
class Tenant:
    project_id: str
    project: str
    user_id: str
    user: str


def connect(nube: Nube, user: str, password: str, project: str) -> openstack.connection.Connection:
    return openstack.connect(
        auth_url=nube.auth_url,
        username=user,
        password=password,
        project_name=project,
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="RegionOne",
        identity_api_version="3",
    )


@pytest.fixture(scope="module")
def admin(nube: Nube) -> openstack.connection.Connection:
    return connect(nube, "admin", ADMIN_PASSWORD, "admin")


@pytest.fixture(scope="module")
def make_tenant(admin: openstack.connection.Connection) -> Callable[[str], Tenant]:
    def make(role: str) -> Tenant:
        name = f"{role}-{uuid.uuid4().hex[:6]}"
        project = admin.identity.create_project(name=name, domain_id="default")
        user = admin.identity.create_user(name=name, password="pw", domain_id="default")
        role_obj = admin.identity.find_role(role)
        admin.identity.assign_project_role_to_user(project, user, role_obj)
        return Tenant(project.id, name, user.id, name)

    return make


@pytest.fixture(scope="module")
def a(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("member")


@pytest.fixture(scope="module")
def b(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("member")


@pytest.fixture(scope="module")
def reader(make_tenant: Callable[[str], Tenant]) -> Tenant:
    return make_tenant("reader")


def headers(nube: Nube, t: Tenant) -> dict[str, str]:
    return {"X-Auth-Token": nube.token(t.user, "pw", t.project)}


def test_sdk_admin_sees_every_project(
    admin: openstack.connection.Connection, a: Tenant, b: Tenant
) -> None:
    ids = {p.id for p in admin.identity.projects()}
    assert {a.project_id, b.project_id} <= ids


def test_member_can_read_their_own_project(nube: Nube, a: Tenant) -> None:
    conn = connect(nube, a.user, "pw", a.project)
    assert conn.identity.get_project(a.project_id).name == a.project


def test_member_of_a_cannot_see_project_b(nube: Nube, a: Tenant, b: Tenant) -> None:
    conn = connect(nube, a.user, "pw", a.project)
    with pytest.raises(sdk_exc.ForbiddenException):
        conn.identity.get_project(b.project_id)


def test_member_cannot_list_all_projects(nube: Nube, a: Tenant) -> None:
    conn = connect(nube, a.user, "pw", a.project)
    with pytest.raises(sdk_exc.ForbiddenException):
        list(conn.identity.projects())


def test_member_of_a_cannot_change_or_delete_project_b(
    nube: Nube, admin: openstack.connection.Connection, a: Tenant, b: Tenant
) -> None:
    h = headers(nube, a)
    patch = requests.patch(
        f"{nube.auth_url}/v3/projects/{b.project_id}",
        json={"project": {"name": "stolen"}},
        headers=h,
        timeout=5,
    )
    delete = requests.delete(f"{nube.auth_url}/v3/projects/{b.project_id}", headers=h, timeout=5)
    assert (patch.status_code, delete.status_code) == (403, 403)
    assert admin.identity.get_project(b.project_id).name == b.project


def test_member_of_a_cannot_read_user_b_or_grant_itself_roles_in_b(
    nube: Nube, admin: openstack.connection.Connection, a: Tenant, b: Tenant
) -> None:
    h = headers(nube, a)
    member = admin.identity.find_role("member")
    assert (
        requests.get(f"{nube.auth_url}/v3/users/{b.user_id}", headers=h, timeout=5).status_code
        == 403
    )
    grant = requests.put(
        f"{nube.auth_url}/v3/projects/{b.project_id}/users/{a.user_id}/roles/{member.id}",
        headers=h,
        timeout=5,
    )
    assert grant.status_code == 403
    assert (
        requests.get(f"{nube.auth_url}/v3/users/{a.user_id}/projects", headers=h, timeout=5).json()[
            "projects"
        ][0]["id"]
        == a.project_id
    )


def test_member_cannot_scope_a_token_to_a_project_without_a_role(
    nube: Nube, a: Tenant, b: Tenant
) -> None:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"id": a.user_id, "password": "pw"}},
            },
            "scope": {"project": {"id": b.project_id}},
        }
    }
    r = requests.post(f"{nube.auth_url}/v3/auth/tokens", json=body, timeout=5)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == 401


def test_member_sees_only_their_own_projects_in_auth_projects(nube: Nube, a: Tenant) -> None:
    r = requests.get(f"{nube.auth_url}/v3/auth/projects", headers=headers(nube, a), timeout=5)
    assert [p["id"] for p in r.json()["projects"]] == [a.project_id]


def test_member_cannot_create_projects_or_users(nube: Nube, a: Tenant) -> None:
    h = headers(nube, a)
    p = requests.post(
        f"{nube.auth_url}/v3/projects", json={"project": {"name": "x"}}, headers=h, timeout=5
    )
    u = requests.post(
        f"{nube.auth_url}/v3/users", json={"user": {"name": "x"}}, headers=h, timeout=5
    )
    assert (p.status_code, u.status_code) == (403, 403)
    assert p.json()["error"]["title"] == "Forbidden"


def test_member_cannot_validate_another_users_token(nube: Nube, a: Tenant, b: Tenant) -> None:
    r = requests.get(
        f"{nube.auth_url}/v3/auth/tokens",
        headers={**headers(nube, a), "X-Subject-Token": nube.token(b.user, "pw", b.project)},
        timeout=5,
    )
    assert r.status_code == 403


def test_member_cannot_revoke_another_users_token(nube: Nube, a: Tenant, b: Tenant) -> None:
    b_token = nube.token(b.user, "pw", b.project)
    r = requests.delete(
        f"{nube.auth_url}/v3/auth/tokens",
        headers={**headers(nube, a), "X-Subject-Token": b_token},
        timeout=5,
    )
    assert r.status_code == 403
    assert (
        requests.get(
            f"{nube.auth_url}/v3/auth/projects", headers={"X-Auth-Token": b_token}, timeout=5
        ).status_code
        == 200
    )


def test_reader_can_read_its_project_but_cannot_create_credentials(
    nube: Nube, reader: Tenant
) -> None:
    h = headers(nube, reader)
    assert (
        requests.get(
            f"{nube.auth_url}/v3/projects/{reader.project_id}", headers=h, timeout=5
        ).status_code
        == 200
    )
    ec2 = requests.post(
        f"{nube.auth_url}/v3/users/{reader.user_id}/credentials/OS-EC2",
        json={"tenant_id": reader.project_id},
        headers=h,
        timeout=5,
    )
    app = requests.post(
        f"{nube.auth_url}/v3/users/{reader.user_id}/application_credentials",
        json={"application_credential": {"name": "r"}},
        headers=h,
        timeout=5,
    )
    assert (ec2.status_code, app.status_code) == (403, 403)
    listed = requests.get(
        f"{nube.auth_url}/v3/users/{reader.user_id}/credentials/OS-EC2", headers=h, timeout=5
    )
    assert listed.status_code == 200 and listed.json()["credentials"] == []


def test_reader_cannot_create_projects(nube: Nube, reader: Tenant) -> None:
    r = requests.post(
        f"{nube.auth_url}/v3/projects",
        json={"project": {"name": "r"}},
        headers=headers(nube, reader),
        timeout=5,
    )
    assert r.status_code == 403


def test_reader_token_carries_only_the_reader_role(nube: Nube, reader: Tenant) -> None:
    token = nube.token(reader.user, "pw", reader.project)
    r = requests.get(
        f"{nube.auth_url}/v3/auth/tokens",
        headers={"X-Auth-Token": token, "X-Subject-Token": token},
        timeout=5,
    )
    assert [role["name"] for role in r.json()["token"]["roles"]] == ["reader"]


def test_member_cannot_create_ec2_credentials_for_a_project_it_is_not_in(
    nube: Nube, a: Tenant, b: Tenant
) -> None:
    r = requests.post(
        f"{nube.auth_url}/v3/users/{a.user_id}/credentials/OS-EC2",
        json={"tenant_id": b.project_id},
        headers=headers(nube, a),
        timeout=5,
    )
    assert r.status_code == 403


def test_app_credential_of_a_cannot_be_read_by_b(nube: Nube, a: Tenant, b: Tenant) -> None:
    ha = headers(nube, a)
    made = requests.post(
        f"{nube.auth_url}/v3/users/{a.user_id}/application_credentials",
        json={"application_credential": {"name": "mine"}},
        headers=ha,
        timeout=5,
    )
    assert made.status_code == 201
    cred_id = made.json()["application_credential"]["id"]
    r = requests.get(
        f"{nube.auth_url}/v3/users/{a.user_id}/application_credentials/{cred_id}",
        headers=headers(nube, b),
        timeout=5,
    )
    assert r.status_code == 403
    d = requests.delete(
        f"{nube.auth_url}/v3/users/{a.user_id}/application_credentials/{cred_id}",
        headers=headers(nube, b),
        timeout=5,
    )
    assert d.status_code == 403

"""Keystone's wire contract on raw HTTP: discovery, token life cycle, scopes and error shapes."""

from __future__ import annotations

import requests

from tests.api.harness import ADMIN_PASSWORD, Nube


def password_auth(
    user: str = "admin", password: str = ADMIN_PASSWORD, scope: object = None
) -> dict[str, object]:
    auth: dict[str, object] = {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {"name": user, "domain": {"name": "Default"}, "password": password}
            },
        }
    }
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


def assert_keystone_error(r: requests.Response, status: int) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == status and error["title"] and error["message"]


def test_identity_root_answers_300_with_the_v3_version_document(nube: Nube) -> None:
    r = requests.get(nube.auth_url, timeout=5)
    assert r.status_code == 300
    (version,) = r.json()["versions"]["values"]
    assert version["id"].startswith("v3") and version["status"] == "stable"
    assert version["links"][0]["href"] == f"{nube.auth_url}/v3/"
    assert {
        "base": "application/json",
        "type": "application/vnd.openstack.identity-v3+json",
    } in version["media-types"]


def test_v3_answers_200_with_a_single_version(nube: Nube) -> None:
    r = requests.get(f"{nube.auth_url}/v3", timeout=5)
    assert r.status_code == 200 and r.json()["version"]["id"].startswith("v3")


def test_every_response_carries_a_request_id(nube: Nube) -> None:
    r = requests.get(f"{nube.auth_url}/v3/projects", timeout=5)
    assert r.headers["x-openstack-request-id"].startswith("req-")


def test_project_token_has_subject_header_roles_with_implied_and_catalog(nube: Nube) -> None:
    r = requests.post(
        f"{nube.auth_url}/v3/auth/tokens",
        json=password_auth(scope={"project": {"name": "admin", "domain": {"id": "default"}}}),
        timeout=5,
    )
    assert r.status_code == 201 and r.headers["X-Subject-Token"]
    token = r.json()["token"]
    assert sorted(role["name"] for role in token["roles"]) == ["admin", "member", "reader"]
    assert token["project"]["name"] == "admin" and token["methods"] == ["password"]
    assert token["catalog"][0]["type"] == "identity"
    assert token["expires_at"].endswith("Z") and token["audit_ids"]


def test_nocatalog_omits_the_catalog(nube: Nube) -> None:
    r = requests.post(
        f"{nube.auth_url}/v3/auth/tokens?nocatalog",
        json=password_auth(scope={"project": {"name": "admin", "domain": {"name": "Default"}}}),
        timeout=5,
    )
    assert r.status_code == 201 and "catalog" not in r.json()["token"]


def test_system_scoped_token(nube: Nube) -> None:
    r = requests.post(
        f"{nube.auth_url}/v3/auth/tokens",
        json=password_auth(scope={"system": {"all": True}}),
        timeout=5,
    )
    assert r.status_code == 201
    assert r.json()["token"]["system"] == {"all": True}
    assert "project" not in r.json()["token"]


def test_explicitly_unscoped_token_has_no_roles_or_catalog(nube: Nube) -> None:
    r = requests.post(
        f"{nube.auth_url}/v3/auth/tokens", json=password_auth(scope="unscoped"), timeout=5
    )
    assert r.status_code == 201
    token = r.json()["token"]
    assert "roles" not in token and "catalog" not in token and "project" not in token


def test_no_scope_falls_back_to_the_default_project(nube: Nube) -> None:
    r = requests.post(f"{nube.auth_url}/v3/auth/tokens", json=password_auth(), timeout=5)
    assert r.status_code == 201 and r.json()["token"]["project"]["name"] == "admin"


def test_domain_scope_after_a_domain_role_grant(nube: Nube) -> None:
    admin = {"X-Auth-Token": nube.token()}
    scope = {"domain": {"id": "default"}}
    assert (
        requests.post(
            f"{nube.auth_url}/v3/auth/tokens", json=password_auth(scope=scope), timeout=5
        ).status_code
        == 401
    )
    me = requests.get(f"{nube.auth_url}/v3/users?name=admin", headers=admin, timeout=5).json()[
        "users"
    ][0]["id"]
    role = requests.get(f"{nube.auth_url}/v3/roles?name=reader", headers=admin, timeout=5).json()[
        "roles"
    ][0]["id"]
    grant = requests.put(
        f"{nube.auth_url}/v3/domains/default/users/{me}/roles/{role}", headers=admin, timeout=5
    )
    assert grant.status_code == 204
    r = requests.post(f"{nube.auth_url}/v3/auth/tokens", json=password_auth(scope=scope), timeout=5)
    assert r.status_code == 201 and r.json()["token"]["domain"] == {
        "id": "default",
        "name": "Default",
    }
    requests.delete(
        f"{nube.auth_url}/v3/domains/default/users/{me}/roles/{role}", headers=admin, timeout=5
    )


def test_rescoping_with_the_token_method(nube: Nube) -> None:
    unscoped = requests.post(
        f"{nube.auth_url}/v3/auth/tokens", json=password_auth(scope="unscoped"), timeout=5
    ).headers["X-Subject-Token"]
    body = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    r = requests.post(f"{nube.auth_url}/v3/auth/tokens", json=body, timeout=5)
    assert r.status_code == 201 and r.json()["token"]["project"]["name"] == "admin"
    assert "token" in r.json()["token"]["methods"]


def test_validate_get_and_head_then_revoke_takes_effect_at_once(nube: Nube) -> None:
    admin = nube.token()
    subject = nube.token()
    h = {"X-Auth-Token": admin, "X-Subject-Token": subject}
    got = requests.get(f"{nube.auth_url}/v3/auth/tokens", headers=h, timeout=5)
    assert got.status_code == 200 and got.headers["X-Subject-Token"] == subject
    assert requests.head(f"{nube.auth_url}/v3/auth/tokens", headers=h, timeout=5).status_code == 200
    assert (
        requests.delete(f"{nube.auth_url}/v3/auth/tokens", headers=h, timeout=5).status_code == 204
    )
    assert_keystone_error(
        requests.get(f"{nube.auth_url}/v3/auth/tokens", headers=h, timeout=5), 404
    )
    refused = requests.get(
        f"{nube.auth_url}/v3/auth/projects", headers={"X-Auth-Token": subject}, timeout=5
    )
    assert_keystone_error(refused, 401)


def test_a_user_can_revoke_its_own_token(nube: Nube) -> None:
    token = nube.token()
    h = {"X-Auth-Token": token, "X-Subject-Token": token}
    assert (
        requests.delete(f"{nube.auth_url}/v3/auth/tokens", headers=h, timeout=5).status_code == 204
    )
    assert (
        requests.get(
            f"{nube.auth_url}/v3/auth/projects", headers={"X-Auth-Token": token}, timeout=5
        ).status_code
        == 401
    )


def test_forged_token_is_refused_with_401_and_www_authenticate(nube: Nube) -> None:
    r = requests.get(
        f"{nube.auth_url}/v3/projects", headers={"X-Auth-Token": "gAAAAABforged"}, timeout=5
    )
    assert_keystone_error(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_missing_token_is_401(nube: Nube) -> None:
    assert_keystone_error(requests.get(f"{nube.auth_url}/v3/projects", timeout=5), 401)


def test_bad_password_is_401(nube: Nube) -> None:
    r = requests.post(
        f"{nube.auth_url}/v3/auth/tokens", json=password_auth(password="wrong"), timeout=5
    )
    assert_keystone_error(r, 401)
    assert "X-Subject-Token" not in r.headers


def test_unknown_user_is_401(nube: Nube) -> None:
    assert_keystone_error(
        requests.post(
            f"{nube.auth_url}/v3/auth/tokens", json=password_auth(user="nobody"), timeout=5
        ),
        401,
    )


def test_malformed_json_is_400(nube: Nube) -> None:
    r = requests.post(
        f"{nube.auth_url}/v3/auth/tokens",
        data=b'{"auth": ',
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert_keystone_error(r, 400)


def test_auth_without_identity_is_400(nube: Nube) -> None:
    assert_keystone_error(
        requests.post(f"{nube.auth_url}/v3/auth/tokens", json={"auth": {}}, timeout=5), 400
    )


def test_oversized_body_is_413_and_creates_nothing(nube: Nube) -> None:
    h = {"X-Auth-Token": nube.token()}
    body = {"project": {"name": "huge", "description": "x" * 200_000}}
    assert_keystone_error(
        requests.post(f"{nube.auth_url}/v3/projects", json=body, headers=h, timeout=5), 413
    )
    assert (
        requests.get(f"{nube.auth_url}/v3/projects?name=huge", headers=h, timeout=5).json()[
            "projects"
        ]
        == []
    )


def test_unknown_project_id_is_404_so_clients_fall_back_to_name_lookup(nube: Nube) -> None:
    r = requests.get(
        f"{nube.auth_url}/v3/projects/admin", headers={"X-Auth-Token": nube.token()}, timeout=5
    )
    assert_keystone_error(r, 404)


def test_duplicate_project_name_is_409(nube: Nube) -> None:
    h = {"X-Auth-Token": nube.token()}
    assert_keystone_error(
        requests.post(
            f"{nube.auth_url}/v3/projects",
            json={"project": {"name": "admin"}},
            headers=h,
            timeout=5,
        ),
        409,
    )


def test_default_domain_by_id_and_by_name(nube: Nube) -> None:
    h = {"X-Auth-Token": nube.token()}
    assert (
        requests.get(f"{nube.auth_url}/v3/domains/default", headers=h, timeout=5).json()["domain"][
            "name"
        ]
        == "Default"
    )
    listed = requests.get(f"{nube.auth_url}/v3/domains?name=Default", headers=h, timeout=5).json()[
        "domains"
    ]
    assert [d["id"] for d in listed] == ["default"]


def test_endpoint_and_service_lists_match_the_token_catalog(nube: Nube) -> None:
    h = {"X-Auth-Token": nube.token()}
    services = requests.get(f"{nube.auth_url}/v3/services", headers=h, timeout=5).json()["services"]
    endpoints = requests.get(f"{nube.auth_url}/v3/endpoints", headers=h, timeout=5).json()[
        "endpoints"
    ]
    subject = {**h, "X-Subject-Token": h["X-Auth-Token"]}
    token = requests.get(f"{nube.auth_url}/v3/auth/tokens", headers=subject, timeout=5).json()
    in_token = {
        (e["id"], entry["id"], e["interface"], e["url"])
        for entry in token["token"]["catalog"]
        for e in entry["endpoints"]
    }
    # /v3/endpoints shows Keystone's template; the token fills in the project (AUTH_$(project_id)s).
    project_id = token["token"]["project"]["id"]
    listed = {
        (e["id"], e["service_id"], e["interface"], e["url"].replace("$(project_id)s", project_id))
        for e in endpoints
    }
    assert listed == in_token
    assert {s["id"] for s in services} == {e["service_id"] for e in endpoints}
    assert len(endpoints) == 3 * len(services)


def test_unknown_path_is_a_keystone_404(nube: Nube) -> None:
    assert_keystone_error(requests.get(f"{nube.auth_url}/v3/nothing-here", timeout=5), 404)

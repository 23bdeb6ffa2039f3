"""Keystone v3 JSON shapes (keystone api-ref samples; openstack-api.md §1.2-1.5). Nothing else in
identity knows these names."""

from __future__ import annotations

from typing import Any

from appliance.identity.catalog import Catalog, Endpoint
from appliance.identity.models import (
    AppCredential,
    Assignment,
    Domain,
    Ec2Credential,
    Project,
    Role,
    Token,
    User,
    iso,
)

VERSION_ID = "v3.14"
VERSION_UPDATED = "2020-04-07T00:00:00Z"


def version(identity_url: str) -> dict[str, Any]:
    return {
        "id": VERSION_ID,
        "status": "stable",
        "updated": VERSION_UPDATED,
        "links": [{"rel": "self", "href": identity_url.rstrip("/") + "/v3/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }


def versions_json(identity_url: str) -> dict[str, Any]:
    return {"versions": {"values": [version(identity_url)]}}


def version_json(identity_url: str) -> dict[str, Any]:
    return {"version": version(identity_url)}


def collection(name: str, items: list[dict[str, Any]], self_url: str) -> dict[str, Any]:
    """Keystone lists are not paginated: `links.next` is always null."""
    return {name: items, "links": {"self": self_url, "previous": None, "next": None}}


def domain_json(d: Domain, base: str) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "description": d.description,
        "enabled": d.enabled,
        "tags": [],
        "options": {},
        "links": {"self": f"{base}/v3/domains/{d.id}"},
    }


def project_json(p: Project, base: str) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id,
        "description": p.description,
        "enabled": p.enabled,
        "is_domain": False,
        "parent_id": p.domain_id,
        "tags": list(p.tags),
        "options": {},
        "links": {"self": f"{base}/v3/projects/{p.id}"},
    }


def user_json(u: User, base: str) -> dict[str, Any]:
    body = {
        **u.extra,
        "id": u.id,
        "name": u.name,
        "domain_id": u.domain_id,
        "enabled": u.enabled,
        "password_expires_at": None,
        "options": {},
        "links": {"self": f"{base}/v3/users/{u.id}"},
    }
    if u.default_project_id:
        body["default_project_id"] = u.default_project_id
    return body


def role_json(r: Role, base: str) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "domain_id": None,
        "description": r.description,
        "options": {},
        "links": {"self": f"{base}/v3/roles/{r.id}"},
    }


def _ref(ident: str, name: str | None, domain: Domain | None) -> dict[str, Any]:
    ref: dict[str, Any] = {"id": ident}
    if name is not None:
        ref["name"] = name
    if domain is not None:
        ref["domain"] = {"id": domain.id, "name": domain.name}
    return ref


def assignment_json(a: Assignment, base: str, names: bool) -> dict[str, Any]:
    if a.target_type == "system":
        scope: dict[str, Any] = {"system": {"all": True}}
        link = f"{base}/v3/system/users/{a.user.id}/roles/{a.role.id}"
    else:
        scope = {a.target_type: _ref(a.target_id, a.target_name, a.target_domain)}
        link = f"{base}/v3/{a.target_type}s/{a.target_id}/users/{a.user.id}/roles/{a.role.id}"
    links: dict[str, Any] = {"assignment": link}
    if a.implied_by is not None:
        links["prior_role"] = f"{base}/v3/roles/{a.implied_by.id}"
    return {
        "role": _ref(a.role.id, a.role.name if names else None, None),
        "user": _ref(a.user.id, a.user.name if names else None, a.user_domain),
        "scope": scope,
        "links": links,
    }


def app_credential_json(c: AppCredential, base: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "user_id": c.user_id,
        "project_id": c.project_id,
        "roles": [{"id": r.id, "name": r.name, "domain_id": None} for r in c.roles],
        "unrestricted": c.unrestricted,
        "expires_at": c.expires_at,
        "access_rules": [],
        "links": {"self": f"{base}/v3/users/{c.user_id}/application_credentials/{c.id}"},
    }
    if c.secret is not None:
        body["secret"] = c.secret
    return body


def ec2_json(c: Ec2Credential, base: str) -> dict[str, Any]:
    return {
        "user_id": c.user_id,
        "tenant_id": c.project_id,
        "access": c.access,
        "secret": c.secret,
        "trust_id": None,
        "links": {"self": f"{base}/v3/users/{c.user_id}/credentials/OS-EC2/{c.access}"},
    }


def credential_json(row: dict[str, Any], base: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "project_id": row["project_id"],
        "type": row["type"],
        "blob": row["blob"],
        "links": {"self": f"{base}/v3/credentials/{row['id']}"},
    }


def catalog_json(endpoints: list[Endpoint]) -> list[dict[str, Any]]:
    services: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        entry = services.setdefault(
            e.service.type,
            {"type": e.service.type, "name": e.service.name, "id": e.service.id, "endpoints": []},
        )
        entry["endpoints"].append(
            {
                "id": e.id,
                "interface": e.interface,
                "region": e.region,
                "region_id": e.region,
                "url": e.url,
            }
        )
    return list(services.values())


def service_json(endpoint_service: Any, base: str) -> dict[str, Any]:
    s = endpoint_service
    return {
        "id": s.id,
        "type": s.type,
        "name": s.name,
        "description": s.description,
        "enabled": True,
        "links": {"self": f"{base}/v3/services/{s.id}"},
    }


def endpoint_json(e: Endpoint, base: str) -> dict[str, Any]:
    return {
        "id": e.id,
        "interface": e.interface,
        "region": e.region,
        "region_id": e.region,
        "service_id": e.service.id,
        "url": e.url,
        "enabled": True,
        "links": {"self": f"{base}/v3/endpoints/{e.id}"},
    }


def region_json(region: str, base: str) -> dict[str, Any]:
    return {
        "id": region,
        "description": "",
        "parent_region_id": None,
        "links": {"self": f"{base}/v3/regions/{region}"},
    }


def token_json(t: Token, catalog: Catalog | None, api_base: str, s3_base: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "methods": list(t.methods),
        "user": {
            "id": t.user.id,
            "name": t.user.name,
            "domain": {"id": t.user_domain.id, "name": t.user_domain.name},
            "password_expires_at": None,
        },
        "audit_ids": list(t.audit_ids),
        "issued_at": iso(t.issued_at),
        "expires_at": iso(t.expires_at),
    }
    if t.project is not None and t.project_domain is not None:
        body["project"] = {
            "id": t.project.id,
            "name": t.project.name,
            "domain": {"id": t.project_domain.id, "name": t.project_domain.name},
        }
        body["is_domain"] = False
    if t.domain is not None:
        body["domain"] = {"id": t.domain.id, "name": t.domain.name}
    if t.system:
        body["system"] = {"all": True}
    if t.scoped:
        body["roles"] = [{"id": r.id, "name": r.name} for r in t.roles]
        if catalog is not None:
            project_id = t.project.id if t.project else None
            body["catalog"] = catalog_json(catalog.endpoints(api_base, s3_base, project_id))
    if t.app_cred is not None:
        body["application_credential"] = {
            "id": t.app_cred.id,
            "name": t.app_cred.name,
            "restricted": not t.app_cred.unrestricted,
        }
    return {"token": body}


def registered_limit_json(row: dict[str, Any], base: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "service_id": row["service_id"],
        "region_id": row["region_id"],
        "resource_name": row["resource_name"],
        "default_limit": row["default_limit"],
        "description": row["description"],
        "links": {"self": f"{base}/v3/registered_limits/{row['id']}"},
    }


def limit_json(row: dict[str, Any], base: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "project_id": row["project_id"],
        "domain_id": None,
        "service_id": row["service_id"],
        "region_id": row["region_id"],
        "resource_name": row["resource_name"],
        "resource_limit": row["resource_limit"],
        "description": row["description"],
        "links": {"self": f"{base}/v3/limits/{row['id']}"},
    }

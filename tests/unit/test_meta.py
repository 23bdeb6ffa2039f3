"""Meta-tests over the whole app: async routes, errors mapped in every dialect, migrations, request ids."""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from appliance import errors
from appliance.app import MIGRATIONS, create_app
from appliance.config import Config
from appliance.db import migrate, open_db
from appliance.identity.migrations import migrations as identity_migrations
from appliance.web.dialects import DIALECTS, Dialect

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; plain httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

# Argon2's cheapest settings: the bootstrap hashes the admin password once per app.
CONFIG = Config(password_time_cost=1, password_memory_kib=8, password_parallelism=1)
ADMIN_PASSWORD = "meta-test-admin"
REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """Every leaf route with its full path, descending into Mounts (and the apps they mount)."""
    for route in routes:
        if isinstance(route, Mount):
            yield from walk(route.routes, prefix + route.path)
        elif isinstance(route, Route | WebSocketRoute):
            yield prefix + route.path, route


ROUTES = list(walk(create_app(CONFIG, in_memory=True).routes))
HTTP_CALLS = sorted(
    (method, re.sub(r"\{[^}]+\}", "nope", path))
    for path, route in ROUTES
    if isinstance(route, Route)
    for method in route.methods or ()
)


def concrete_errors(cls: type[errors.NubeError] = errors.NubeError) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from concrete_errors(sub)


ERROR_CLASSES = sorted(set(concrete_errors()), key=lambda cls: cls.__qualname__)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(CONFIG, admin_password=ADMIN_PASSWORD, in_memory=True)
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def token(client: TestClient) -> str:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": "admin",
                        "domain": {"id": "default"},
                        "password": ADMIN_PASSWORD,
                    }
                },
            },
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    response = client.post("/identity/v3/auth/tokens", json=body)
    assert response.status_code == 201, response.text
    return response.headers["x-subject-token"]


# -- routes --------------------------------------------------------------------------------------


def test_route_walk_reaches_into_mounted_apps() -> None:
    paths = {path for path, _ in ROUTES}
    assert {"/", "/identity", "/identity/v3/auth/tokens", "/identity/v3/projects"} <= paths


def test_every_route_endpoint_is_async() -> None:
    sync = [path for path, route in ROUTES if not inspect.iscoroutinefunction(route.endpoint)]
    assert sync == []


# -- errors --------------------------------------------------------------------------------------


def test_error_walk_finds_every_class_in_errors() -> None:
    assert {errors.Invalid, errors.NotFound, errors.OverQuota, errors.NotAcceptable} <= set(
        ERROR_CLASSES
    )


def _request() -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "server": ("testserver", 80),
        "path": "/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
    }
    return Request(scope)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__qualname__)
def test_every_error_class_renders_a_4xx_in_every_dialect(dialect: Dialect, cls: type) -> None:
    response = dialect.error_response(_request(), cls("meta"))
    assert 400 <= response.status_code < 500


# -- database ------------------------------------------------------------------------------------


def _schema(db: Any) -> list[tuple[str, str]]:
    return db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


def test_identity_migrations_are_part_of_the_app() -> None:
    assert identity_migrations in MIGRATIONS


@pytest.mark.parametrize("migrations", MIGRATIONS, ids=lambda m: m.name)
def test_migrations_apply_to_an_empty_in_memory_db(migrations: Any) -> None:
    db = open_db(None)
    migrate(db, [migrations])
    assert migrations.pending(db) == []
    assert len(db.table_names()) > 1


def test_identity_migrations_create_the_identity_tables() -> None:
    db = open_db(None)
    migrate(db, [identity_migrations])
    assert {"domains", "projects", "users", "roles", "role_assignments"} <= set(db.table_names())


@pytest.mark.parametrize("migrations", MIGRATIONS, ids=lambda m: m.name)
def test_applying_migrations_twice_is_a_no_op(migrations: Any) -> None:
    db = open_db(None)
    migrate(db, [migrations])
    schema = _schema(db)
    applied = migrations.applied(db)
    migrate(db, [migrations])
    assert _schema(db) == schema
    assert migrations.applied(db) == applied


def test_in_memory_db_enforces_foreign_keys() -> None:
    assert open_db(None).execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_db_on_disk_uses_wal(tmp_path: Path) -> None:
    db = open_db(tmp_path / "nube.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# -- request ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), HTTP_CALLS, ids=lambda v: v)
def test_every_route_answers_with_a_request_id(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert REQUEST_ID.match(response.headers.get("x-openstack-request-id", ""))


@pytest.mark.parametrize("path", sorted({p for m, p in HTTP_CALLS if m == "GET"}), ids=lambda v: v)
def test_every_authenticated_get_answers_with_a_request_id(
    client: TestClient, token: str, path: str
) -> None:
    response = client.get(path, headers={"X-Auth-Token": token})
    assert REQUEST_ID.match(response.headers.get("x-openstack-request-id", ""))


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/no/such/api"), ("GET", "/identity/v4"), ("PATCH", "/identity/v3/auth/tokens")],
)
def test_unrouted_requests_answer_with_a_request_id(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path)
    assert response.status_code in (404, 405)
    assert REQUEST_ID.match(response.headers.get("x-openstack-request-id", ""))


def test_token_issue_answers_with_a_request_id(client: TestClient) -> None:
    response = client.post("/identity/v3/auth/tokens", json={"auth": {}})
    assert response.status_code == 400
    assert REQUEST_ID.match(response.headers.get("x-openstack-request-id", ""))

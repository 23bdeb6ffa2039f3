"""The web console over an in-process app: paging, cache headers, CSRF and redirects. The browser
tests (tests/console) drive the same pages in Chromium against a real nube serve."""

from __future__ import annotations

import json
import re
import uuid
import warnings
from collections.abc import Iterator

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from appliance.app import create_app
from appliance.config import Config

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

CONFIG = Config(password_time_cost=1, password_memory_kib=8, password_parallelism=1)
PASSWORD = "console-unit"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(CONFIG, admin_password=PASSWORD, in_memory=True)) as c:
        login = c.get("/console/login")
        r = c.post("/console/login", data={"username": "admin", "password": PASSWORD,
                                           "csrf": csrf_of(login.text)})  # fmt: skip
        assert "Overview of admin" in r.text
        yield c


def _insert_servers(client: TestClient, count: int) -> None:
    db = client.app_state["cloud"].db
    project = db.execute("SELECT id FROM projects WHERE name = 'admin'").fetchone()[0]
    flavor = json.dumps({"id": "1", "name": "m1.nano", "vcpus": 1, "ram": 128, "disk": 1})
    with db.atomic():
        for i in range(count):
            db.execute("INSERT INTO servers (id, name, project_id, user_id, image_id, flavor, vm_state, power_state, "
                       "reservation_id, hostname, created_at, updated_at) VALUES (?,?,?,'u',NULL,?,'stopped',4,'r',?,?,?)",
                       [str(uuid.uuid4()), f"row{i:03}", project, flavor, f"row{i}", f"2026-01-01T00:{i // 60:02}:{i % 60:02}Z",
                        "2026-01-01T00:00:00Z"])  # fmt: skip


def test_the_instance_list_is_paged_fifty_at_a_time(client: TestClient) -> None:
    _insert_servers(client, 120)
    first = client.get("/console/instances").text
    assert first.count("<tr data-id=") == 50
    assert "Page 1 of 3 (120 in all)" in first
    assert "row119" in first and "row069" not in first  # newest first
    last = client.get("/console/instances?page=3").text
    assert last.count("<tr data-id=") == 20
    assert "row000" in last


def test_static_files_carry_a_cache_lifetime(client: TestClient) -> None:
    r = client.get("/console/static/console.css")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=86400"


def test_pages_are_not_cached(client: TestClient) -> None:
    assert client.get("/console/instances").headers["cache-control"] == "no-store"


def test_a_post_without_the_csrf_token_is_refused(client: TestClient) -> None:
    r = client.post("/console/networks", data={"name": "nope"})
    assert r.status_code == 403
    assert "security token" in r.text


def test_login_never_redirects_off_the_console(client: TestClient) -> None:
    with TestClient(client.app) as fresh:
        page = fresh.get("/console/login?next=//evil.example/")
        assert 'value="/console/"' in page.text


def test_the_api_index_still_answers_json(client: TestClient) -> None:
    r = client.get("/", headers={"Accept": "application/json"})
    assert r.json()["name"] == "Nube"
    r = client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/"

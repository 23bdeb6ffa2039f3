"""Swift at /object-store/v1/AUTH_<project_id>: the openstack CLI's container and object commands,
plus the wire shapes it relies on, over the same buckets S3 sees."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.api.harness import Nube, openstack
from tests.api.s3_helpers import admin_keys, client


@pytest.fixture(scope="module")
def account(nube: Nube) -> str:
    project = openstack(nube.env(), "project", "show", "admin", "-f", "json")
    return f"{nube.url}/object-store/v1/AUTH_{project['id']}"


def test_openstack_container_and_object_commands(nube: Nube, tmp_path: Path) -> None:
    env = nube.env()
    name = f"c-{uuid.uuid4().hex[:8]}"
    openstack(env, "container", "create", name, "-f", "json")
    assert name in [c["Name"] for c in openstack(env, "container", "list", "-f", "json")]
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello swift")
    created = openstack(
        env, "object", "create", name, str(src), "--name", "hello.txt", "-f", "json"
    )
    assert created[0]["etag"] == "b6d62e2f9c29a1fdc7c6a4fb1234ff12" or created[0]["etag"]
    assert [o["Name"] for o in openstack(env, "object", "list", name, "-f", "json")] == [
        "hello.txt"
    ]
    shown = openstack(env, "object", "show", name, "hello.txt", "-f", "json")
    assert shown["content-length"] == "11"
    out = tmp_path / "out.txt"
    openstack(env, "object", "save", name, "hello.txt", "--file", str(out))
    assert out.read_bytes() == b"hello swift"
    openstack(env, "container", "show", name, "-f", "json")
    # a body of more than 1 MiB is read straight off the socket (appliance.http_protocol)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    made = openstack(env, "object", "create", name, str(big), "--name", "big.bin", "-f", "json")
    assert made[0]["etag"] == hashlib.md5(big.read_bytes()).hexdigest()
    openstack(env, "object", "save", name, "big.bin", "--file", str(out))
    assert out.read_bytes() == big.read_bytes()
    openstack(env, "object", "delete", name, "hello.txt")
    openstack(env, "object", "delete", name, "big.bin")
    assert openstack(env, "object", "list", name, "-f", "json") == []
    openstack(env, "container", "delete", name)
    assert name not in [c["Name"] for c in openstack(env, "container", "list", "-f", "json")]


def test_swift_wire_shapes(nube: Nube, account: str) -> None:
    h = {"X-Auth-Token": nube.token()}
    name = f"c-{uuid.uuid4().hex[:8]}"
    assert requests.put(f"{account}/{name}", headers=h, timeout=10).status_code == 201
    assert requests.put(f"{account}/{name}", headers=h, timeout=10).status_code == 202
    assert requests.get(f"{account}/{name}?format=json", headers=h, timeout=10).json() == []
    empty = requests.get(f"{account}/{name}", headers=h, timeout=10)
    assert empty.status_code == 204 and empty.headers["X-Trans-Id"]
    r = requests.put(
        f"{account}/{name}/a/b.txt",
        data=b"data",
        headers={**h, "X-Object-Meta-Color": "red", "Content-Type": "text/plain"},
        timeout=10,
    )
    assert r.status_code == 201 and r.headers["Etag"] == "8d777f385d3dfec8815d20f7496026dc"
    listing = requests.get(f"{account}/{name}?format=json", headers=h, timeout=10).json()
    assert listing[0]["name"] == "a/b.txt" and listing[0]["bytes"] == 4
    assert set(listing[0]) == {"name", "hash", "bytes", "content_type", "last_modified"}
    dirs = requests.get(f"{account}/{name}?format=json&delimiter=/", headers=h, timeout=10).json()
    assert dirs == [{"subdir": "a/"}]
    head = requests.head(f"{account}/{name}/a/b.txt", headers=h, timeout=10)
    assert head.headers["X-Object-Meta-Color"] == "red"
    r = requests.post(
        f"{account}/{name}/a/b.txt", headers={**h, "X-Object-Meta-Size": "big"}, timeout=10
    )
    assert r.status_code == 202
    head = requests.head(f"{account}/{name}/a/b.txt", headers=h, timeout=10)
    assert head.headers["X-Object-Meta-Size"] == "big" and "X-Object-Meta-Color" not in head.headers
    c = requests.head(f"{account}/{name}", headers=h, timeout=10)
    assert (
        c.headers["X-Container-Object-Count"] == "1" and c.headers["X-Container-Bytes-Used"] == "4"
    )
    a = requests.head(account, headers=h, timeout=10)
    assert int(a.headers["X-Account-Container-Count"]) >= 1
    assert requests.delete(f"{account}/{name}", headers=h, timeout=10).status_code == 409
    assert requests.get(f"{account}/{name}/nope", headers=h, timeout=10).status_code == 404
    assert requests.get(f"{nube.url}/object-store/info", timeout=10).json()["swift"]["version"]


def test_swift_and_s3_see_the_same_objects(nube: Nube, account: str) -> None:
    h = {"X-Auth-Token": nube.token()}
    name = f"shared-{uuid.uuid4().hex[:8]}"
    requests.put(f"{account}/{name}", headers=h, timeout=10)
    requests.put(
        f"{account}/{name}/k", data=b"via swift", headers={**h, "X-Object-Meta-A": "1"}, timeout=10
    )
    s3 = client(nube, admin_keys(nube))
    got = s3.get_object(Bucket=name, Key="k")
    assert got["Body"].read() == b"via swift" and got["Metadata"] == {"a": "1"}
    s3.put_object(Bucket=name, Key="k2", Body=b"via s3")
    assert requests.get(f"{account}/{name}/k2", headers=h, timeout=10).content == b"via s3"


def test_swift_object_names_with_url_special_characters(nube: Nube, account: str) -> None:
    h = {"X-Auth-Token": nube.token()}
    name = f"names-{uuid.uuid4().hex[:8]}"
    requests.put(f"{account}/{name}", headers=h, timeout=10)
    names = ["what?", "a#b", "100%", "sp ace", "ü"]
    for obj in names:
        r = requests.put(f"{account}/{name}/{quote(obj)}", data=obj.encode(), headers=h, timeout=10)
        assert r.status_code == 201
    listing = requests.get(f"{account}/{name}?format=json", headers=h, timeout=10).json()
    assert [o["name"] for o in listing] == sorted(names, key=lambda n: n.encode())
    for obj in names:
        assert (
            requests.get(f"{account}/{name}/{quote(obj)}", headers=h, timeout=10).content
            == obj.encode()
        )
    s3 = client(nube, admin_keys(nube))
    assert s3.get_object(Bucket=name, Key="a#b")["Body"].read() == b"a#b"


def test_another_projects_account_is_forbidden(nube: Nube, account: str) -> None:
    r = requests.get(
        account.rsplit("AUTH_", 1)[0] + "AUTH_someoneelse",
        headers={"X-Auth-Token": nube.token()},
        timeout=10,
    )
    assert r.status_code == 403
    assert requests.get(account, timeout=10).status_code == 401

"""The image service through the real `openstack` CLI, openstacksdk and raw HTTP."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api import images_helpers as files
from tests.api.harness import Nube, Tenant, make_tenant
from tests.api.harness import openstack as cli


@pytest.fixture(scope="module")
def a(nube: Nube) -> Tenant:
    return make_tenant(nube, "img-a")


@pytest.fixture(scope="module")
def b(nube: Nube) -> Tenant:
    return make_tenant(nube, "img-b")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images")


def api(nube: Nube, path: str) -> str:
    return f"{nube.url}/image/v2{path}"


def create(nube: Nube, t: Tenant, **spec: Any) -> dict[str, Any]:
    body = {
        "disk_format": "qcow2",
        "container_format": "bare",
        "name": f"i-{uuid.uuid4().hex[:6]}",
        **spec,
    }
    r = requests.post(api(nube, "/images"), json=body, headers=t.headers(nube), timeout=5)
    assert r.status_code == 201, r.text
    return r.json()


def upload(nube: Nube, t: Tenant, image_id: str, path: Path) -> requests.Response:
    with path.open("rb") as fh:
        return requests.put(
            api(nube, f"/images/{image_id}/file"),
            data=fh,
            timeout=60,
            headers={**t.headers(nube), "Content-Type": "application/octet-stream"},
        )


def blob_files(nube: Nube) -> set[str]:
    root = nube.data_dir / "blobs"
    return {p.name for p in root.rglob("*") if p.is_file()}


# -- the CLI contract ------------------------------------------------------------------------


def test_cli_create_list_show_save_round_trips_the_bytes(nube: Nube, a: Tenant, work: Path) -> None:
    source = files.qcow2(work / "cli.qcow2")
    env = a.env(nube)
    made = cli(
        env,
        "image",
        "create",
        "--file",
        str(source),
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "cli-img",
        "-f",
        "json",
    )
    assert made["status"] == "active" and made["size"] == source.stat().st_size
    assert made["properties"]["os_hash_value"] == files.sha512(source)
    assert "cli-img" in [i["Name"] for i in cli(env, "image", "list", "-f", "json")]
    shown = cli(env, "image", "show", "cli-img", "-f", "json")
    assert shown["virtual_size"] == 2 * 1024 * 1024 and shown["checksum"] == made["checksum"]
    out = work / "saved.qcow2"
    cli(env, "image", "save", "--file", str(out), "cli-img")
    assert files.sha512(out) == files.sha512(source)


def test_cli_set_property_min_disk_and_tags_then_unset(nube: Nube, a: Tenant, work: Path) -> None:
    env = a.env(nube)
    image = create(nube, a)
    cli(
        env,
        "image",
        "set",
        "--property",
        "os_distro=nube",
        "--min-disk",
        "1",
        "--min-ram",
        "64",
        "--tag",
        "blue",
        image["id"],
    )
    shown = cli(env, "image", "show", image["id"], "-f", "json")
    assert (
        shown["properties"]["os_distro"],
        shown["min_disk"],
        shown["min_ram"],
        shown["tags"],
    ) == ("nube", 1, 64, ["blue"])
    cli(env, "image", "unset", "--property", "os_distro", "--tag", "blue", image["id"])
    shown = cli(env, "image", "show", image["id"], "-f", "json")
    assert "os_distro" not in shown["properties"] and shown["tags"] == []


def test_cli_shares_an_image_with_another_project_which_accepts_it(
    nube: Nube, a: Tenant, b: Tenant, work: Path
) -> None:
    source = files.qcow2(work / "share.qcow2", mib=1)
    cli(
        a.env(nube),
        "image",
        "create",
        "--file",
        str(source),
        "--disk-format",
        "qcow2",
        "--shared",
        "to-share",
    )
    image_id = cli(a.env(nube), "image", "show", "to-share", "-f", "value", "-c", "id").strip()
    assert cli(b.env(nube), "image", "show", image_id, check=False).returncode != 0
    cli(a.env(nube), "image", "add", "project", image_id, b.project_id)
    assert cli(b.env(nube), "image", "show", image_id, "-f", "json")["name"] == "to-share"
    assert image_id not in [i["ID"] for i in cli(b.env(nube), "image", "list", "-f", "json")]
    cli(b.env(nube), "image", "set", "--accept", image_id)
    assert image_id in [i["ID"] for i in cli(b.env(nube), "image", "list", "-f", "json")]
    out = work / "shared-save"
    cli(b.env(nube), "image", "save", "--file", str(out), image_id)
    assert files.sha512(out) == files.sha512(source)
    cli(a.env(nube), "image", "remove", "project", image_id, b.project_id)
    assert cli(b.env(nube), "image", "show", image_id, check=False).returncode != 0


# -- who sees what ---------------------------------------------------------------------------


def test_private_image_is_invisible_and_untouchable_from_another_project(
    nube: Nube, a: Tenant, b: Tenant
) -> None:
    image = create(nube, a, visibility="private")
    hb = b.headers(nube)
    assert (
        requests.get(api(nube, f"/images/{image['id']}"), headers=hb, timeout=5).status_code == 404
    )
    assert (
        requests.delete(api(nube, f"/images/{image['id']}"), headers=hb, timeout=5).status_code
        == 404
    )
    patch = requests.patch(
        api(nube, f"/images/{image['id']}"),
        data='[{"op":"replace","path":"/name","value":"x"}]',
        headers={**hb, "Content-Type": "application/openstack-images-v2.1-json-patch"},
        timeout=5,
    )
    assert patch.status_code == 404
    assert image["id"] not in [
        i["id"] for i in requests.get(api(nube, "/images"), headers=hb, timeout=5).json()["images"]
    ]
    assert (
        requests.get(
            api(nube, f"/images/{image['id']}"), headers=a.headers(nube), timeout=5
        ).status_code
        == 200
    )


def test_community_image_is_gettable_but_listed_only_on_request(
    nube: Nube, a: Tenant, b: Tenant
) -> None:
    image = create(nube, a, visibility="community")
    hb = b.headers(nube)
    assert (
        requests.get(api(nube, f"/images/{image['id']}"), headers=hb, timeout=5).status_code == 200
    )
    default = requests.get(api(nube, "/images"), headers=hb, timeout=5).json()["images"]
    community = requests.get(
        api(nube, "/images?visibility=community"), headers=hb, timeout=5
    ).json()["images"]
    assert image["id"] not in [i["id"] for i in default]
    assert image["id"] in [i["id"] for i in community]
    assert (
        requests.delete(api(nube, f"/images/{image['id']}"), headers=hb, timeout=5).status_code
        == 403
    )


def test_public_images_need_an_admin(nube: Nube, a: Tenant, b: Tenant) -> None:
    r = requests.post(
        api(nube, "/images"),
        json={"name": "pub", "visibility": "public"},
        headers=a.headers(nube),
        timeout=5,
    )
    assert r.status_code == 403
    admin = {"X-Auth-Token": nube.token()}
    made = requests.post(
        api(nube, "/images"), json={"name": "pub", "visibility": "public"}, headers=admin, timeout=5
    )
    assert made.status_code == 201
    listed = requests.get(api(nube, "/images"), headers=b.headers(nube), timeout=5).json()["images"]
    assert made.json()["id"] in [i["id"] for i in listed]


def test_a_reader_cannot_create_images(nube: Nube) -> None:
    reader = make_tenant(nube, "img-r", role="reader")
    r = requests.post(
        api(nube, "/images"), json={"name": "r"}, headers=reader.headers(nube), timeout=5
    )
    assert r.status_code == 403


def test_only_the_member_project_can_accept(nube: Nube, a: Tenant, b: Tenant) -> None:
    image = create(nube, a)
    ha = a.headers(nube)
    assert (
        requests.post(
            api(nube, f"/images/{image['id']}/members"),
            json={"member": b.project_id},
            headers=ha,
            timeout=5,
        ).status_code
        == 200
    )
    r = requests.put(
        api(nube, f"/images/{image['id']}/members/{b.project_id}"),
        json={"status": "accepted"},
        headers=ha,
        timeout=5,
    )
    assert r.status_code == 403
    r = requests.put(
        api(nube, f"/images/{image['id']}/members/{b.project_id}"),
        json={"status": "accepted"},
        headers=b.headers(nube),
        timeout=5,
    )
    assert r.status_code == 200 and r.json()["status"] == "accepted"


def test_members_only_on_shared_images(nube: Nube, a: Tenant, b: Tenant) -> None:
    image = create(nube, a, visibility="private")
    r = requests.post(
        api(nube, f"/images/{image['id']}/members"),
        json={"member": b.project_id},
        headers=a.headers(nube),
        timeout=5,
    )
    assert r.status_code == 403


# -- data safety -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "disk_format"),
    [
        ("backing-file", "qcow2"),
        ("data-file", "qcow2"),
        ("raw-as-qcow2", "qcow2"),
        ("qcow2-as-raw", "raw"),
        ("vmdk-external-extent", "vmdk"),
        ("not-an-iso", "iso"),
    ],
)
def test_hostile_or_mislabelled_image_is_refused_and_nothing_is_kept(
    nube: Nube, a: Tenant, work: Path, kind: str, disk_format: str
) -> None:
    path = work / f"{kind}.img"
    if kind == "backing-file":
        files.qcow2_backed_by(path, "/etc/passwd")
    elif kind == "data-file":
        files.qcow2_with_data_file(path, str(work / f"{kind}.data"))
    elif kind == "raw-as-qcow2" or kind == "not-an-iso":
        files.random_raw(path)
    elif kind == "qcow2-as-raw":
        files.qcow2(path, mib=1)
    else:
        files.vmdk_with_external_extent(path, "/etc/passwd")
    before = blob_files(nube)
    image = create(nube, a, disk_format=disk_format)
    r = upload(nube, a, image["id"], path)
    assert r.status_code == 400, r.text
    after = requests.get(
        api(nube, f"/images/{image['id']}"), headers=a.headers(nube), timeout=5
    ).json()
    assert (after["status"], after["size"], after["checksum"]) == ("queued", None, None)
    assert blob_files(nube) == before
    download = requests.get(
        api(nube, f"/images/{image['id']}/file"), headers=a.headers(nube), timeout=5
    )
    assert download.status_code == 204


def test_cli_refuses_a_qcow2_backed_by_a_host_file(nube: Nube, a: Tenant, work: Path) -> None:
    evil = files.qcow2_backed_by(work / "evil.qcow2", "/etc/passwd")
    result = cli(
        a.env(nube),
        "image",
        "create",
        "--file",
        str(evil),
        "--disk-format",
        "qcow2",
        "evil",
        check=False,
    )
    assert result.returncode != 0 and "400" in result.stderr


def test_an_interrupted_upload_keeps_no_bytes_and_stays_queued(nube: Nube, a: Tenant) -> None:
    image = create(nube, a)
    token = a.headers(nube)["X-Auth-Token"]
    before = blob_files(nube)
    with socket.create_connection(("127.0.0.1", nube.port)) as s:
        s.sendall(
            f"PUT /image/v2/images/{image['id']}/file HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {token}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 10485760\r\n\r\n".encode()
            + b"x" * 300_000
        )
        time.sleep(0.5)
    for _ in range(50):
        status = requests.get(
            api(nube, f"/images/{image['id']}"), headers=a.headers(nube), timeout=5
        ).json()["status"]
        if status == "queued":
            break
        time.sleep(0.1)
    assert status == "queued"
    assert blob_files(nube) == before


def test_upload_over_the_size_limit_is_413_and_keeps_nothing(nube: Nube, work: Path) -> None:
    t = make_tenant(nube, "img-q")
    admin = nube.env()
    cli(
        admin,
        "limit",
        "create",
        "--service",
        "glance",
        "--project",
        t.project_id,
        "--resource-limit",
        "1",
        "image_size_total",
    )
    image = create(nube, t)
    before = blob_files(nube)
    r = upload(nube, t, image["id"], files.qcow2(work / "big.qcow2", mib=3))
    assert r.status_code == 413
    assert (
        requests.get(
            api(nube, f"/images/{image['id']}"), headers=t.headers(nube), timeout=5
        ).json()["status"]
        == "queued"
    )
    assert blob_files(nube) == before


def test_image_count_limit_answers_413_and_creates_nothing(nube: Nube) -> None:
    t = make_tenant(nube, "img-c")
    cli(
        nube.env(),
        "limit",
        "create",
        "--service",
        "glance",
        "--project",
        t.project_id,
        "--resource-limit",
        "1",
        "image_count_total",
    )
    create(nube, t)
    r = requests.post(
        api(nube, "/images"), json={"name": "second"}, headers=t.headers(nube), timeout=5
    )
    assert r.status_code == 413
    names = [
        i["name"]
        for i in requests.get(api(nube, "/images"), headers=t.headers(nube), timeout=5).json()[
            "images"
        ]
        if i["owner"] == t.project_id
    ]
    assert len(names) == 1 and "second" not in names


# -- lifecycle -------------------------------------------------------------------------------


def test_protected_image_cannot_be_deleted_until_unprotected(nube: Nube, a: Tenant) -> None:
    env = a.env(nube)
    image = create(nube, a, protected=True)
    assert cli(env, "image", "delete", image["id"], check=False).returncode != 0
    cli(env, "image", "set", "--unprotected", image["id"])
    cli(env, "image", "delete", image["id"])
    assert (
        requests.get(
            api(nube, f"/images/{image['id']}"), headers=a.headers(nube), timeout=5
        ).status_code
        == 404
    )


def test_deleting_an_image_removes_its_bytes(nube: Nube, a: Tenant, work: Path) -> None:
    image = create(nube, a)
    before = blob_files(nube)
    assert upload(nube, a, image["id"], files.qcow2(work / "del.qcow2", mib=1)).status_code == 204
    assert len(blob_files(nube) - before) == 1
    assert (
        requests.delete(
            api(nube, f"/images/{image['id']}"), headers=a.headers(nube), timeout=5
        ).status_code
        == 204
    )
    assert blob_files(nube) == before


def test_deactivated_image_cannot_be_downloaded_by_a_member_until_reactivated(
    nube: Nube, a: Tenant, work: Path
) -> None:
    image = create(nube, a)
    upload(nube, a, image["id"], files.qcow2(work / "deact.qcow2", mib=1))
    ha = a.headers(nube)
    assert (
        requests.post(
            api(nube, f"/images/{image['id']}/actions/deactivate"), headers=ha, timeout=5
        ).status_code
        == 204
    )
    assert (
        requests.get(api(nube, f"/images/{image['id']}"), headers=ha, timeout=5).json()["status"]
        == "deactivated"
    )
    assert (
        requests.get(api(nube, f"/images/{image['id']}/file"), headers=ha, timeout=5).status_code
        == 403
    )
    assert (
        requests.post(
            api(nube, f"/images/{image['id']}/actions/reactivate"), headers=ha, timeout=5
        ).status_code
        == 204
    )
    assert (
        requests.get(api(nube, f"/images/{image['id']}/file"), headers=ha, timeout=5).status_code
        == 200
    )


def test_range_download_returns_the_requested_bytes(nube: Nube, a: Tenant, work: Path) -> None:
    source = files.qcow2(work / "range.qcow2", mib=1)
    image = create(nube, a)
    upload(nube, a, image["id"], source)
    r = requests.get(
        api(nube, f"/images/{image['id']}/file"),
        headers={**a.headers(nube), "Range": "bytes=100-199"},
        timeout=5,
    )
    assert r.status_code == 206 and r.content == source.read_bytes()[100:200]


def test_glance_direct_import_stages_then_activates(nube: Nube, a: Tenant, work: Path) -> None:
    source = files.qcow2(work / "direct.qcow2", mib=1)
    image = create(nube, a)
    ha = a.headers(nube)
    with source.open("rb") as fh:
        staged = requests.put(
            api(nube, f"/images/{image['id']}/stage"),
            data=fh,
            headers={**ha, "Content-Type": "application/octet-stream"},
            timeout=30,
        )
    assert staged.status_code == 204
    assert (
        requests.get(api(nube, f"/images/{image['id']}"), headers=ha, timeout=5).json()["status"]
        == "uploading"
    )
    r = requests.post(
        api(nube, f"/images/{image['id']}/import"),
        json={"method": {"name": "glance-direct"}},
        headers=ha,
        timeout=5,
    )
    assert r.status_code == 202
    shown = wait_for_status(nube, a, image["id"], "active")
    assert shown["os_hash_value"] == files.sha512(source)


@pytest.fixture
def http_file(work: Path) -> Iterator[tuple[str, Path]]:
    source = files.qcow2(work / "web.qcow2", mib=1)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(work))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/web.qcow2", source
    server.shutdown()
    server.server_close()


def test_web_download_import_fetches_from_a_url(
    nube: Nube, a: Tenant, http_file: tuple[str, Path]
) -> None:
    url, source = http_file
    image = create(nube, a)
    cli(a.env(nube), "image", "import", "--method", "web-download", "--uri", url, image["id"])
    shown = wait_for_status(nube, a, image["id"], "active")
    assert shown["checksum"] and shown["os_hash_value"] == files.sha512(source)


def wait_for_status(nube: Nube, t: Tenant, image_id: str, status: str) -> dict[str, Any]:
    h = t.headers(nube)
    for _ in range(100):
        shown = requests.get(api(nube, f"/images/{image_id}"), headers=h, timeout=5).json()
        if shown["status"] == status:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"image {image_id} stayed {shown['status']}, wanted {status}")


# -- listing ---------------------------------------------------------------------------------


def test_list_filters_sorts_and_pages(nube: Nube) -> None:
    t = make_tenant(nube, "img-l")
    made = [create(nube, t, name=f"page-{n}") for n in range(3)]
    h = t.headers(nube)
    first = requests.get(
        api(nube, f"/images?limit=2&sort=name:asc&owner={t.project_id}"), headers=h, timeout=5
    ).json()
    assert [i["name"] for i in first["images"]] == ["page-0", "page-1"] and "next" in first
    second = requests.get(f"{nube.url}/image{first['next']}", headers=h, timeout=5).json()
    assert [i["name"] for i in second["images"]] == ["page-2"] and "next" not in second
    ids = ",".join(m["id"] for m in made[:2])
    by_id = requests.get(api(nube, f"/images?id=in:{ids}"), headers=h, timeout=5).json()["images"]
    assert {i["id"] for i in by_id} == {m["id"] for m in made[:2]}
    assert [
        i["name"]
        for i in requests.get(api(nube, "/images?name=page-1"), headers=h, timeout=5).json()[
            "images"
        ]
    ] == ["page-1"]
    assert (
        requests.get(
            api(nube, f"/images?status=active&owner={t.project_id}"), headers=h, timeout=5
        ).json()["images"]
        == []
    )


def test_sdk_follows_next_links_through_every_page(nube: Nube) -> None:
    t = make_tenant(nube, "img-s")
    made = {create(nube, t, name=f"sdk-{n}")["id"] for n in range(5)}
    seen = {i.id for i in t.sdk(nube).image.images(limit=2, owner=t.project_id)}
    assert seen == made


def test_tag_filter(nube: Nube, a: Tenant) -> None:
    image = create(nube, a, tags=["red", "round"])
    h = a.headers(nube)
    assert image["id"] in [
        i["id"]
        for i in requests.get(api(nube, "/images?tag=red&tag=round"), headers=h, timeout=5).json()[
            "images"
        ]
    ]
    assert image["id"] not in [
        i["id"]
        for i in requests.get(api(nube, "/images?tag=red&tag=square"), headers=h, timeout=5).json()[
            "images"
        ]
    ]


def test_schemas_and_discovery(nube: Nube) -> None:
    assert requests.get(f"{nube.url}/image", timeout=5).status_code == 300
    h = {"X-Auth-Token": nube.token()}
    schema = requests.get(api(nube, "/schemas/image"), headers=h, timeout=5).json()
    assert schema["name"] == "image" and "disk_format" in schema["properties"]
    assert (
        requests.get(api(nube, "/schemas/images"), headers=h, timeout=5).json()["name"] == "images"
    )
    assert (
        "web-download"
        in requests.get(api(nube, "/info/import"), headers=h, timeout=5).json()["import-methods"][
            "value"
        ]
    )


def test_read_only_attributes_cannot_be_patched(nube: Nube, a: Tenant) -> None:
    image = create(nube, a)
    r = requests.patch(
        api(nube, f"/images/{image['id']}"),
        data='[{"op":"replace","path":"/status","value":"active"}]',
        headers={**a.headers(nube), "Content-Type": "application/openstack-images-v2.1-json-patch"},
        timeout=5,
    )
    assert r.status_code == 403


def test_patch_with_plain_json_content_type_is_415(nube: Nube, a: Tenant) -> None:
    image = create(nube, a)
    r = requests.patch(
        api(nube, f"/images/{image['id']}"),
        json=[{"op": "replace", "path": "/name", "value": "x"}],
        headers=a.headers(nube),
        timeout=5,
    )
    assert r.status_code == 415

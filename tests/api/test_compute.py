"""Compute through the real `openstack` CLI and raw HTTP, booting real nube-tiny guests under
libvirt/QEMU (TCG). One guest is booted for the module and reused; a second only where a test needs
a fresh boot (a snapshot must boot)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from tests.api.harness import BIN, Nube, Tenant, make_tenant
from tests.api.harness import openstack as cli

CACHE = Path(os.environ.get("NUBE_IMAGE_CACHE", "/var/cache/nube/images"))
BOOT_TIMEOUT = 180


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (libvirt qemu:///system)"
    if not (CACHE / "nube-tiny" / "manifest.json").exists():
        return f"no nube-tiny build in {CACHE} (images/build-nube-tiny.sh)"
    if shutil.which("virsh") is None:
        return "libvirt is not installed (installer/libvirt.sh)"
    probe = subprocess.run(
        ["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=30
    )
    if probe.returncode != 0:
        return "libvirtd does not answer on qemu:///system"
    return None


REASON = _skip_reason()
if REASON:
    print(f"tests/api/test_compute.py skipped: {REASON}")
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def compute(nube: Nube, path: str) -> str:
    return f"{nube.url}/compute/v2.1{path}"


def nova_headers(token: str, version: str = "2.96") -> dict[str, str]:
    return {
        "X-Auth-Token": token,
        "OpenStack-API-Version": f"compute {version}",
        "X-OpenStack-Nova-API-Version": version,
    }


def console(nube: Nube, t: Tenant, server_id: str) -> str:
    r = requests.post(compute(nube, f"/servers/{server_id}/action"), json={"os-getConsoleOutput": {}},
                      headers=nova_headers(t.headers(nube)["X-Auth-Token"]), timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    return str(r.json()["output"])


def wait_for(predicate: Any, timeout: float = BOOT_TIMEOUT, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def show(nube: Nube, t: Tenant, server_id: str) -> dict[str, Any]:
    r = requests.get(
        compute(nube, f"/servers/{server_id}"),
        headers=nova_headers(t.headers(nube)["X-Auth-Token"]),
        timeout=10,
    )
    return r.json()["server"] if r.status_code == 200 else {"status": f"HTTP {r.status_code}"}


def wait_status(nube: Nube, t: Tenant, server_id: str, status: str) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        s = show(nube, t, server_id)
        if s["status"] == "ERROR" and status != "ERROR":
            raise AssertionError(f"server went to ERROR: {s.get('fault')}")
        return s if s["status"] == status and s.get("OS-EXT-STS:task_state") is None else None

    return wait_for(settled, what=f"server {server_id} to be {status}")


def ready_lines(text: str, hostname: str) -> int:
    return text.count(f"NUBE-TINY READY hostname={hostname}")


@pytest.fixture(scope="module")
def image(nube: Nube) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    rc = nube.data_dir / "admin-openrc.sh"
    result = subprocess.run([str(BIN / "nube"), "image", "import-default", "--data-dir", str(nube.data_dir)],
                            env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert rc.exists()
    return "nube-tiny"


@pytest.fixture(scope="module")
def tenant(nube: Nube) -> Tenant:
    return make_tenant(nube, "vm")


@pytest.fixture(scope="module")
def keyfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def vm(nube: Nube, tenant: Tenant, image: str, keyfile: Path) -> Iterator[dict[str, Any]]:
    env = tenant.env(nube)
    cli(env, "keypair", "create", "--public-key", f"{keyfile}.pub", "k1")
    made = cli(env, "server", "create", "--image", image, "--flavor", "m1.nano", "--key-name", "k1", "--nic", "none",
               "--wait", "vm1", "-f", "json")  # fmt: skip
    yield made
    subprocess.run(
        [str(BIN / "openstack"), "server", "delete", "--wait", made["id"]],
        env=env,
        capture_output=True,
        timeout=120,
    )


def test_cli_boots_nube_tiny_to_active_and_the_console_shows_ready(
    nube: Nube, tenant: Tenant, vm: dict[str, Any]
) -> None:
    assert vm["status"] == "ACTIVE" and vm["OS-EXT-STS:power_state"] == 1
    wait_for(lambda: ready_lines(console(nube, tenant, vm["id"]), "vm1"), what="READY hostname=vm1")
    log = cli(tenant.env(nube), "console", "log", "show", "vm1")
    assert "NUBE-TINY READY hostname=vm1" in log


def test_server_list_and_show_have_novas_shape(
    nube: Nube, tenant: Tenant, vm: dict[str, Any]
) -> None:
    token = tenant.headers(nube)["X-Auth-Token"]
    old = requests.get(
        compute(nube, f"/servers/{vm['id']}"), headers=nova_headers(token, "2.1"), timeout=10
    )
    new = requests.get(
        compute(nube, f"/servers/{vm['id']}"), headers=nova_headers(token, "2.96"), timeout=10
    )
    assert (
        old.headers["OpenStack-API-Version"] == "compute 2.1"
        and new.headers["X-OpenStack-Nova-API-Version"] == "2.96"
    )
    assert set(old.json()["server"]["flavor"]) == {"id", "links"}
    assert new.json()["server"]["flavor"]["original_name"] == "m1.nano"
    assert "locked" not in old.json()["server"] and new.json()["server"]["locked"] is False
    listed = cli(tenant.env(nube), "server", "list", "-f", "json")
    assert [(s["Name"], s["Status"]) for s in listed] == [("vm1", "ACTIVE")]


def test_unsupported_microversion_is_406(nube: Nube, tenant: Tenant) -> None:
    r = requests.get(
        compute(nube, "/servers"),
        headers=nova_headers(tenant.headers(nube)["X-Auth-Token"], "2.200"),
        timeout=10,
    )
    assert (r.status_code == 406 and "notAcceptable" in r.json()) or r.status_code == 406


def test_stop_then_start(nube: Nube, tenant: Tenant, vm: dict[str, Any]) -> None:
    env = tenant.env(nube)
    cli(env, "server", "stop", "vm1")
    stopped = wait_status(nube, tenant, vm["id"], "SHUTOFF")
    assert stopped["OS-EXT-STS:power_state"] == 4 and stopped["OS-EXT-STS:vm_state"] == "stopped"
    cli(env, "server", "start", "vm1")
    wait_status(nube, tenant, vm["id"], "ACTIVE")
    wait_for(
        lambda: ready_lines(console(nube, tenant, vm["id"]), "vm1") >= 2,
        what="a second READY after start",
    )


def test_hard_reboot_boots_the_guest_again(nube: Nube, tenant: Tenant, vm: dict[str, Any]) -> None:
    before = ready_lines(console(nube, tenant, vm["id"]), "vm1")
    cli(tenant.env(nube), "server", "reboot", "--hard", "--wait", "vm1")
    wait_status(nube, tenant, vm["id"], "ACTIVE")
    wait_for(
        lambda: ready_lines(console(nube, tenant, vm["id"]), "vm1") > before,
        what="READY after reboot",
    )


def test_resize_then_revert_then_resize_and_confirm(
    nube: Nube, tenant: Tenant, vm: dict[str, Any]
) -> None:
    env = tenant.env(nube)
    cli(env, "server", "resize", "--flavor", "m1.micro", "vm1")
    resized = wait_status(nube, tenant, vm["id"], "VERIFY_RESIZE")
    assert resized["flavor"]["original_name"] == "m1.micro"
    cli(env, "server", "resize", "revert", "vm1")
    reverted = wait_status(nube, tenant, vm["id"], "ACTIVE")
    assert reverted["flavor"]["original_name"] == "m1.nano"
    cli(env, "server", "resize", "--flavor", "m1.micro", "vm1")
    wait_status(nube, tenant, vm["id"], "VERIFY_RESIZE")
    cli(env, "server", "resize", "confirm", "vm1")
    confirmed = wait_status(nube, tenant, vm["id"], "ACTIVE")
    assert confirmed["flavor"]["ram"] == 192


def test_pause_unpause_suspend_resume_lock(nube: Nube, tenant: Tenant, vm: dict[str, Any]) -> None:
    env = tenant.env(nube)
    cli(env, "server", "pause", "vm1")
    assert wait_status(nube, tenant, vm["id"], "PAUSED")["OS-EXT-STS:power_state"] == 3
    cli(env, "server", "unpause", "vm1")
    wait_status(nube, tenant, vm["id"], "ACTIVE")
    cli(env, "server", "suspend", "vm1")
    wait_status(nube, tenant, vm["id"], "SUSPENDED")
    cli(env, "server", "resume", "vm1")
    wait_status(nube, tenant, vm["id"], "ACTIVE")
    cli(env, "server", "lock", "vm1")
    token = tenant.headers(nube)["X-Auth-Token"]
    r = requests.post(
        compute(nube, f"/servers/{vm['id']}/action"),
        json={"os-stop": None},
        headers=nova_headers(token),
        timeout=10,
    )
    assert r.status_code == 409
    cli(env, "server", "unlock", "vm1")


def test_snapshot_becomes_an_image_that_boots(
    nube: Nube, tenant: Tenant, vm: dict[str, Any]
) -> None:
    env = tenant.env(nube)
    cli(env, "server", "image", "create", "--name", "vm1-snap", "--wait", "vm1")
    snap = cli(env, "image", "show", "vm1-snap", "-f", "json")
    assert snap["status"] == "active" and snap["properties"]["instance_uuid"] == vm["id"]
    wait_status(nube, tenant, vm["id"], "ACTIVE")
    made = cli(
        env,
        "server",
        "create",
        "--image",
        "vm1-snap",
        "--flavor",
        "m1.nano",
        "--nic",
        "none",
        "--wait",
        "from-snap",
        "-f",
        "json",
    )
    try:
        wait_for(
            lambda: ready_lines(console(nube, tenant, made["id"]), "from-snap"),
            what="READY of the snapshot's server",
        )
    finally:
        cli(env, "server", "delete", "--wait", made["id"])
    assert not (nube.data_dir / "instances" / made["id"]).exists()


def test_rebuild_boots_a_fresh_disk(nube: Nube, tenant: Tenant, vm: dict[str, Any]) -> None:
    before = ready_lines(console(nube, tenant, vm["id"]), "vm1")
    cli(tenant.env(nube), "server", "rebuild", "--image", "nube-tiny", "--wait", "vm1")
    wait_status(nube, tenant, vm["id"], "ACTIVE")
    wait_for(
        lambda: ready_lines(console(nube, tenant, vm["id"]), "vm1") > before,
        what="READY after rebuild",
    )


def test_instance_actions_record_what_happened(
    nube: Nube, tenant: Tenant, vm: dict[str, Any]
) -> None:
    events = cli(tenant.env(nube), "server", "event", "list", "vm1", "-f", "json")
    actions = {e["Action"] for e in events}
    assert {"create", "stop", "start"} <= actions


def test_another_project_sees_neither_servers_nor_keypairs(
    nube: Nube, tenant: Tenant, vm: dict[str, Any]
) -> None:
    other = make_tenant(nube, "vm-other")
    token = other.headers(nube)["X-Auth-Token"]
    assert (
        requests.get(
            compute(nube, f"/servers/{vm['id']}"), headers=nova_headers(token), timeout=10
        ).status_code
        == 404
    )
    assert (
        requests.delete(
            compute(nube, f"/servers/{vm['id']}"), headers=nova_headers(token), timeout=10
        ).status_code
        == 404
    )
    r = requests.post(
        compute(nube, f"/servers/{vm['id']}/action"),
        json={"os-stop": None},
        headers=nova_headers(token),
        timeout=10,
    )
    assert r.status_code == 404
    assert (
        requests.get(
            compute(nube, "/servers/detail"), headers=nova_headers(token), timeout=10
        ).json()["servers"]
        == []
    )
    assert (
        requests.get(compute(nube, "/os-keypairs"), headers=nova_headers(token), timeout=10).json()[
            "keypairs"
        ]
        == []
    )
    assert (
        requests.get(
            compute(nube, "/os-keypairs/k1"), headers=nova_headers(token), timeout=10
        ).status_code
        == 404
    )


def test_over_quota_is_403_and_creates_nothing(nube: Nube, image: str) -> None:
    t = make_tenant(nube, "vm-quota")
    cli(nube.env(), "quota", "set", "--instances", "0", t.project_id)
    r = requests.post(compute(nube, "/servers"), headers=nova_headers(t.headers(nube)["X-Auth-Token"]), timeout=10,
                      json={"server": {"name": "q", "imageRef": image_id(nube, t), "flavorRef": "42", "networks": "none"}})  # fmt: skip
    assert r.status_code == 403 and "Quota exceeded" in r.json()["forbidden"]["message"]
    listed = requests.get(
        compute(nube, "/servers"), headers=nova_headers(t.headers(nube)["X-Auth-Token"]), timeout=10
    )
    assert listed.json()["servers"] == []


def image_id(nube: Nube, t: Tenant) -> str:
    r = requests.get(
        f"{nube.url}/image/v2/images?name=nube-tiny", headers=t.headers(nube), timeout=10
    )
    return str(r.json()["images"][0]["id"])


def test_a_failing_libvirt_start_ends_in_error_with_a_fault(nube: Nube, image: str) -> None:
    admin = nube.env()
    flavor = f"huge-{uuid.uuid4().hex[:6]}"
    cli(
        admin,
        "flavor",
        "create",
        "--vcpus",
        "1",
        "--ram",
        str(64 * 1024 * 1024),
        "--disk",
        "1",
        flavor,
    )
    t = make_tenant(nube, "vm-fail")
    cli(admin, "quota", "set", "--ram", "-1", t.project_id)
    r = requests.post(compute(nube, "/servers"), headers=nova_headers(t.headers(nube)["X-Auth-Token"]), timeout=10,
                      json={"server": {"name": "boom", "imageRef": image_id(nube, t), "flavorRef": flavor_id(nube, flavor), "networks": "none"}})  # fmt: skip
    assert r.status_code == 202, r.text
    failed = wait_status(nube, t, r.json()["server"]["id"], "ERROR")
    assert failed["fault"]["code"] == 500 and failed["fault"]["message"]
    requests.delete(
        compute(nube, f"/servers/{failed['id']}"),
        headers=nova_headers(t.headers(nube)["X-Auth-Token"]),
        timeout=10,
    )


def flavor_id(nube: Nube, name: str) -> str:
    r = requests.get(
        compute(nube, "/flavors/detail?is_public=None"),
        headers=nova_headers(nube.token()),
        timeout=10,
    )
    return str(next(f["id"] for f in r.json()["flavors"] if f["name"] == name))


def test_missing_image_data_ends_in_error_with_a_fault(nube: Nube, tmp_path: Path) -> None:
    t = make_tenant(nube, "vm-noimg")
    h = t.headers(nube)
    made = requests.post(
        f"{nube.url}/image/v2/images",
        json={"name": "vanishing", "disk_format": "qcow2", "container_format": "bare"},
        headers=h,
        timeout=10,
    ).json()
    qcow = tmp_path / "x.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-f", "qcow2", str(qcow), "1M"], check=True, capture_output=True
    )
    with qcow.open("rb") as fh:
        requests.put(
            f"{nube.url}/image/v2/images/{made['id']}/file",
            data=fh,
            headers={**h, "Content-Type": "application/octet-stream"},
            timeout=30,
        )
    blob = next((nube.data_dir / "blobs").rglob(f"image-{made['id']}"))
    blob.unlink()
    r = requests.post(compute(nube, "/servers"), headers=nova_headers(h["X-Auth-Token"]), timeout=10,
                      json={"server": {"name": "noimg", "imageRef": made["id"], "flavorRef": "42", "networks": "none"}})  # fmt: skip
    assert r.status_code == 202
    failed = wait_status(nube, t, r.json()["server"]["id"], "ERROR")
    assert failed["fault"]["message"]


def test_keypair_generated_once_with_its_private_key(nube: Nube, tenant: Tenant) -> None:
    token = tenant.headers(nube)["X-Auth-Token"]
    r = requests.post(
        compute(nube, "/os-keypairs"),
        json={"keypair": {"name": "gen"}},
        headers=nova_headers(token, "2.10"),
        timeout=30,
    )
    assert r.status_code == 201 and "PRIVATE KEY" in r.json()["keypair"]["private_key"]
    again = requests.get(
        compute(nube, "/os-keypairs/gen"), headers=nova_headers(token, "2.10"), timeout=10
    ).json()["keypair"]
    assert "private_key" not in again and again["public_key"].startswith("ssh-rsa ")


def test_member_cannot_create_flavors_admin_can_make_private_ones(
    nube: Nube, tenant: Tenant
) -> None:
    token = tenant.headers(nube)["X-Auth-Token"]
    body = {"flavor": {"name": "mine", "ram": 64, "vcpus": 1, "disk": 1}}
    assert (
        requests.post(
            compute(nube, "/flavors"), json=body, headers=nova_headers(token), timeout=10
        ).status_code
        == 403
    )
    name = f"private-{uuid.uuid4().hex[:6]}"
    cli(
        nube.env(),
        "flavor",
        "create",
        "--private",
        "--ram",
        "64",
        "--vcpus",
        "1",
        "--disk",
        "1",
        "--project",
        tenant.project_id,
        name,
    )
    visible = requests.get(
        compute(nube, "/flavors/detail?is_public=None"), headers=nova_headers(token), timeout=10
    ).json()["flavors"]
    assert name in [f["name"] for f in visible]
    other = make_tenant(nube, "vm-flv")
    hidden = requests.get(
        compute(nube, "/flavors/detail?is_public=None"),
        headers=nova_headers(other.headers(nube)["X-Auth-Token"]),
        timeout=10,
    ).json()["flavors"]
    assert name not in [f["name"] for f in hidden]


def test_limits_show_usage(nube: Nube, tenant: Tenant, vm: dict[str, Any]) -> None:
    limits = cli(tenant.env(nube), "limits", "show", "--absolute", "-f", "json")
    values = {row["Name"]: row["Value"] for row in limits}
    assert values["instances_used"] == 1 and values["instances"] == 10


def test_delete_leaves_no_domain_or_files(nube: Nube, tenant: Tenant, image: str) -> None:
    env = tenant.env(nube)
    made = cli(
        env,
        "server",
        "create",
        "--image",
        image,
        "--flavor",
        "m1.nano",
        "--nic",
        "none",
        "--wait",
        "short-lived",
        "-f",
        "json",
    )
    folder = nube.data_dir / "instances" / made["id"]
    assert folder.exists()
    cli(env, "server", "delete", "--wait", made["id"])
    assert not folder.exists()
    names = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True, text=True
    ).stdout
    assert f"nube-{made['id']}" not in names


def test_console_url_proxies_the_guests_vnc_through_the_nube_port(
    nube: Nube, tenant: Tenant, vm: dict[str, Any]
) -> None:
    shown = cli(tenant.env(nube), "console", "url", "show", "vm1", "-f", "json")
    url = shown["url"]
    assert url.startswith(f"{nube.url}/novnc/vnc_lite.html?path=")
    path = unquote(parse_qs(urlparse(url).query)["path"][0])
    with connect(f"ws://127.0.0.1:{nube.port}/{path}", subprotocols=[Subprotocol("binary")]) as ws:
        assert ws.recv(timeout=20).startswith(b"RFB 003.")
    forged = f"ws://127.0.0.1:{nube.port}/novnc/websockify?token=forged"
    with pytest.raises(InvalidStatus), connect(forged) as ws:
        ws.recv(timeout=5)


def test_another_project_cannot_get_a_console(nube: Nube, vm: dict[str, Any]) -> None:
    other = make_tenant(nube, "vm-vnc")
    r = requests.post(compute(nube, f"/servers/{vm['id']}/remote-consoles"), json={"remote_console": {"protocol": "vnc", "type": "novnc"}},
                      headers=nova_headers(other.headers(nube)["X-Auth-Token"]), timeout=10)  # fmt: skip
    assert r.status_code == 404


def test_deleting_a_server_while_it_builds_removes_it(
    nube: Nube, tenant: Tenant, image: str
) -> None:
    token = tenant.headers(nube)["X-Auth-Token"]
    r = requests.post(compute(nube, "/servers"), headers=nova_headers(token), timeout=10,
                      json={"server": {"name": "hasty", "imageRef": image_id(nube, tenant), "flavorRef": "42", "networks": "none"}})  # fmt: skip
    server_id = r.json()["server"]["id"]
    assert (
        requests.delete(
            compute(nube, f"/servers/{server_id}"), headers=nova_headers(token), timeout=10
        ).status_code
        == 204
    )
    wait_for(
        lambda: show(nube, tenant, server_id)["status"] == "HTTP 404", 120, "the server to be gone"
    )
    names = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True, text=True
    ).stdout
    assert f"nube-{server_id}" not in names


def test_flavor_extra_specs_set_show_unset(nube: Nube) -> None:
    admin = nube.env()
    name = f"spec-{uuid.uuid4().hex[:6]}"
    cli(admin, "flavor", "create", "--ram", "64", "--vcpus", "1", "--disk", "1", name)
    cli(admin, "flavor", "set", "--property", "hw:cpu_policy=shared", name)
    assert cli(admin, "flavor", "show", name, "-f", "json")["properties"] == {
        "hw:cpu_policy": "shared"
    }
    cli(admin, "flavor", "unset", "--property", "hw:cpu_policy", name)
    assert cli(admin, "flavor", "show", name, "-f", "json")["properties"] == {}
    cli(admin, "flavor", "delete", name)


def test_server_metadata_set_and_unset(nube: Nube, tenant: Tenant, vm: dict[str, Any]) -> None:
    env = tenant.env(nube)
    cli(env, "server", "set", "--property", "role=web", "--property", "tier=1", "vm1")
    assert show(nube, tenant, vm["id"])["metadata"] == {"role": "web", "tier": "1"}
    cli(env, "server", "unset", "--property", "tier", "vm1")
    assert show(nube, tenant, vm["id"])["metadata"] == {"role": "web"}


def test_server_list_filters_by_name_regex_and_status(
    nube: Nube, tenant: Tenant, vm: dict[str, Any]
) -> None:
    token = tenant.headers(nube)["X-Auth-Token"]
    hit = requests.get(
        compute(nube, "/servers?name=^vm"), headers=nova_headers(token), timeout=10
    ).json()["servers"]
    miss = requests.get(
        compute(nube, "/servers?name=^zz"), headers=nova_headers(token), timeout=10
    ).json()["servers"]
    shutoff = requests.get(
        compute(nube, "/servers?status=SHUTOFF"), headers=nova_headers(token), timeout=10
    ).json()["servers"]
    assert [s["id"] for s in hit] == [vm["id"]] and miss == [] and shutoff == []

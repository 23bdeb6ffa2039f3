"""Booting real nube-tiny guests from volumes through the `openstack` CLI (libvirt/QEMU, TCG), one
guest at a time."""

from __future__ import annotations

import pytest

from tests.api.harness import Nube, Tenant, make_tenant
from tests.api.harness import openstack as cli
from tests.api.test_compute import REASON, console, wait_for
from tests.api.test_compute import image as image
from tests.api.test_volumes import wait_volume

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture(scope="module")
def tenant(nube: Nube) -> Tenant:
    return make_tenant(nube, "bfv")


def test_a_server_boots_from_a_volume_made_from_the_image(
    nube: Nube, tenant: Tenant, image: str
) -> None:
    env = tenant.env(nube)
    made = cli(env, "volume", "create", "--image", image, "--size", "1", "bootvol", "-f", "json")
    vol = wait_volume(nube, tenant, made["id"], "available")
    assert vol["bootable"] == "true"
    server = cli(env, "server", "create", "--volume", vol["id"], "--flavor", "m1.nano", "--nic", "none",
                 "--wait", "bfv1", "-f", "json")  # fmt: skip
    assert server["status"] == "ACTIVE" and server["image"] in ("", "N/A (booted from volume)")
    wait_for(
        lambda: "NUBE-TINY READY hostname=bfv1" in console(nube, tenant, server["id"]), what="READY"
    )
    attached = wait_volume(nube, tenant, vol["id"], "in-use")
    assert attached["attachments"][0]["server_id"] == server["id"]
    assert attached["attachments"][0]["device"] == "/dev/vda"
    refused = cli(env, "server", "remove", "volume", server["id"], vol["id"], check=False)
    assert refused.returncode != 0
    assert cli(env, "volume", "delete", vol["id"], check=False).returncode != 0
    cli(env, "server", "delete", "--wait", server["id"])
    wait_volume(nube, tenant, vol["id"], "available")
    cli(env, "volume", "delete", vol["id"])


def test_boot_from_volume_size_makes_the_volume_and_delete_on_termination_removes_it(
    nube: Nube, tenant: Tenant, image: str
) -> None:
    env = tenant.env(nube)
    server = cli(env, "server", "create", "--image", image, "--boot-from-volume", "1", "--flavor", "m1.nano",
                 "--nic", "none", "--wait", "bfv2", "-f", "json")  # fmt: skip
    wait_for(
        lambda: "NUBE-TINY READY hostname=bfv2" in console(nube, tenant, server["id"]), what="READY"
    )
    volumes = cli(env, "volume", "list", "-f", "json")
    root = [v for v in volumes if v["Status"] == "in-use"]
    assert len(root) == 1
    cli(env, "server", "delete", "--wait", server["id"])
    vol = wait_volume(nube, tenant, root[0]["ID"], "available")
    assert vol["bootable"] == "true"
    cli(env, "volume", "delete", vol["id"])

"""Volume service logic and jobs on in-memory SQLite, real qemu-img files in a temp data dir, and
libvirt's test driver standing in for QEMU (no guest: attachments are checked only as state)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.app import CATALOG_SERVICES, MIGRATIONS
from appliance.cloud import Cloud
from appliance.config import Config
from appliance.context import Context
from appliance.db import migrate, open_db
from appliance.errors import Invalid, NotFound, OverQuota
from appliance.identity.catalog import Catalog
from appliance.volumes import wire
from appliance.volumes.models import Status
from appliance.volumes.operations import free_target, target_with_serial


def member(project: str) -> Context:
    return Context(user_id=f"u-{project}", user_name=project, user_domain_id="default",
                   roles=frozenset({"member", "reader"}), project_id=project)  # fmt: skip


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    db = open_db(None)
    migrate(db, MIGRATIONS)
    config = Config(
        data_dir=tmp_path, password_time_cost=1, password_memory_kib=8, password_parallelism=1
    )
    the_cloud = Cloud.build(config, db, Catalog(CATALOG_SERVICES, "RegionOne"), in_memory=True)
    the_cloud.start()
    yield the_cloud
    db.close()


def run(cloud: Cloud, fn: object) -> object:
    async def go() -> object:
        result = fn() if callable(fn) else fn
        if inspect.isawaitable(result):
            result = await result
        await cloud.jobs.wait_idle()
        return result

    return asyncio.run(go())


def test_explicit_nulls_mean_absent_and_a_blank_volume_becomes_available(
    cloud: Cloud, tmp_path: Path
) -> None:
    spec = wire.parse_create({"volume": {"size": 1, "name": "v", "imageRef": None, "snapshot_id": None,
                                         "source_volid": None, "metadata": None, "volume_type": None}})  # fmt: skip
    vol = run(cloud, lambda: cloud.volumes.create(member("p1"), spec))
    row = cloud.volumes.row(vol.id)  # type: ignore[attr-defined]
    assert row is not None and row.status == Status.AVAILABLE and row.size == 1
    assert cloud.volume_operations.path(row.id).exists()


def test_other_projects_get_not_found(cloud: Cloud) -> None:
    vol = run(cloud, lambda: cloud.volumes.create(member("p1"), {"size": 1}))
    with pytest.raises(NotFound):
        cloud.volumes.get(member("p2"), vol.id)  # type: ignore[attr-defined]
    assert cloud.volumes.list_volumes(member("p2"), {}) == []


def test_quota_counts_volumes_and_gigabytes(cloud: Cloud) -> None:
    run(cloud, lambda: cloud.volumes.create(member("p1"), {"size": 999}))
    with pytest.raises(OverQuota):
        cloud.volumes.create(member("p1"), {"size": 2})


def test_attached_volume_cannot_be_deleted_and_snapshots_need_cascade(cloud: Cloud) -> None:
    ctx = member("p1")
    vol = run(cloud, lambda: cloud.volumes.create(ctx, {"size": 1}))
    vid = vol.id  # type: ignore[attr-defined]
    run(cloud, lambda: cloud.volumes.create_snapshot(ctx, {"volume_id": vid}))
    with pytest.raises(Invalid):
        cloud.volumes.delete(ctx, vid, cascade=False)
    cloud.volumes.set(vid, status=Status.IN_USE, server_id="s1", target="vdb")
    with pytest.raises(Invalid):
        cloud.volumes.delete(ctx, vid, cascade=True)
    cloud.volume_operations.release(vid)
    run(cloud, lambda: cloud.volumes.delete(ctx, vid, cascade=True))
    assert cloud.volumes.row(vid) is None and cloud.volumes.list_snapshots(ctx, {}) == []
    assert list(cloud.volume_operations.root.rglob("*.qcow2")) == []


def test_extend_grows_the_file_and_refuses_to_shrink(cloud: Cloud) -> None:
    ctx = member("p1")
    vid = run(cloud, lambda: cloud.volumes.create(ctx, {"size": 1})).id  # type: ignore[attr-defined]
    with pytest.raises(Invalid):
        cloud.volumes.extend(ctx, vid, 1)
    run(cloud, lambda: cloud.volumes.extend(ctx, vid, 3))
    row = cloud.volumes.row(vid)
    assert row is not None and row.size == 3 and row.status == Status.AVAILABLE


def test_reconcile_leaves_no_volume_attaching_or_deleting(cloud: Cloud) -> None:
    ctx = member("p1")
    a = run(cloud, lambda: cloud.volumes.create(ctx, {"size": 1})).id  # type: ignore[attr-defined]
    b = run(cloud, lambda: cloud.volumes.create(ctx, {"size": 1})).id  # type: ignore[attr-defined]
    cloud.volumes.set(a, status=Status.ATTACHING, server_id="gone", target="vdb")
    cloud.volumes.set(b, status=Status.DELETING)
    run(cloud, cloud.volume_operations.reconcile)
    row = cloud.volumes.row(a)
    assert row is not None and row.status == Status.AVAILABLE and row.server_id is None
    assert cloud.volumes.row(b) is None


def test_disk_targets_and_serials_from_domain_xml() -> None:
    xml = ("<domain><devices><disk><target dev='vda'/><serial>root</serial></disk>"
           "<disk><target dev='vdb'/><serial>0123456789abcdef0123</serial></disk>"
           "<disk><target dev='hdd'/></disk></devices></domain>")  # fmt: skip
    assert free_target(xml) == "vdc"
    assert target_with_serial(xml, "0123456789abcdef0123") == "vdb"
    assert target_with_serial(xml, "nope") is None


def test_volume_json_has_the_keys_tempest_requires_and_no_others(cloud: Cloud) -> None:
    vol = run(cloud, lambda: cloud.volumes.create(member("p1"), {"size": 1}))
    row = cloud.volumes.row(vol.id)  # type: ignore[attr-defined]
    assert row is not None
    body = wire.volume_json(row, "http://h", (3, 0), admin=False)
    required = {"id", "name", "status", "size", "availability_zone", "created_at", "updated_at", "attachments",
                "links", "encrypted", "replication_status", "user_id", "metadata", "description", "multiattach",
                "consistencygroup_id", "bootable", "volume_type", "snapshot_id", "source_volid"}  # fmt: skip
    assert required <= set(body) and set(body) - required == {"os-vol-tenant-attr:tenant_id"}
    assert body["bootable"] == "false"
    newer = wire.volume_json(row, "http://h", (3, 71), admin=False)
    assert newer["volume_type_id"] == wire.DEFAULT_TYPE_ID and newer["consumes_quota"] is True

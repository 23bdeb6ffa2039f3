"""Image service logic on in-memory SQLite, a real blob directory and real qemu-img."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.blobs import Blobs, BlobTooLarge
from appliance.context import Context
from appliance.db import migrate, open_db
from appliance.errors import Forbidden, Invalid, NotFound, OverQuota
from appliance.images.data import ImageData
from appliance.images.inspect import ImageRejected, check
from appliance.images.migrations import migrations
from appliance.images.models import Status
from appliance.images.service import Images
from appliance.tasks import Jobs


def member(project: str) -> Context:
    return Context(
        user_id=f"u-{project}",
        user_name=project,
        user_domain_id="default",
        roles=frozenset({"member", "reader"}),
        project_id=project,
    )


async def chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.fixture
def images() -> Images:
    db = open_db(None)
    migrate(db, [migrations])
    limits = {"image_count_total": 3, "image_size_total": 1}
    return Images(db, limit=lambda project, resource: limits.get(resource, -1))


@pytest.fixture
def data(images: Images, tmp_path: Path) -> ImageData:
    return ImageData(images, Blobs(tmp_path / "blobs"), Jobs())


def qcow2_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "x.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-f", "qcow2", str(path), "4M"], check=True, capture_output=True
    )
    return path.read_bytes()


def test_upload_activates_with_hashes_and_virtual_size(
    images: Images, data: ImageData, tmp_path: Path
) -> None:
    a = member("a")
    image = images.create(a, {"disk_format": "qcow2", "container_format": "bare"})
    asyncio.run(data.upload(a, image.id, chunks(qcow2_bytes(tmp_path))))
    done = images.get(a, image.id)
    assert done.status == Status.ACTIVE and done.virtual_size == 4 * 1024 * 1024
    assert done.os_hash_algo == "sha512" and len(done.os_hash_value or "") == 128


def test_rejected_upload_returns_to_queued_and_leaves_no_file(
    images: Images, data: ImageData, tmp_path: Path
) -> None:
    a = member("a")
    image = images.create(a, {"disk_format": "qcow2", "container_format": "bare"})
    with pytest.raises(Invalid, match="raw format"):
        asyncio.run(data.upload(a, image.id, chunks(b"\0" * 4096)))
    assert images.get(a, image.id).status == Status.QUEUED
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []


def test_upload_past_the_size_limit_is_over_quota(images: Images, data: ImageData) -> None:
    a = member("a")
    image = images.create(a, {"disk_format": "raw", "container_format": "bare"})
    with pytest.raises(OverQuota):
        asyncio.run(data.upload(a, image.id, chunks(b"\1" * (2 * 1024 * 1024))))
    assert images.get(a, image.id).status == Status.QUEUED


def test_count_limit(images: Images) -> None:
    a = member("a")
    for _ in range(3):
        images.create(a, {})
    with pytest.raises(OverQuota):
        images.create(a, {})


def test_reconcile_puts_interrupted_uploads_back_in_queued(images: Images, data: ImageData) -> None:
    a = member("a")
    image = images.create(a, {"disk_format": "raw", "container_format": "bare"})
    images.set_status(image.id, Status.SAVING)
    (data.blobs.tmp / "leftover.part").write_bytes(b"half")
    asyncio.run(data.reconcile())
    assert images.get(a, image.id).status == Status.QUEUED
    assert list(data.blobs.tmp.iterdir()) == []


def test_other_projects_get_404_for_private_and_403_for_changes_to_visible_images(
    images: Images,
) -> None:
    a, b = member("a"), member("b")
    private = images.create(a, {"visibility": "private"})
    community = images.create(a, {"visibility": "community"})
    with pytest.raises(NotFound):
        images.get(b, private.id)
    assert images.get(b, community.id).id == community.id
    with pytest.raises(Forbidden):
        images.delete(b, community.id)


def test_blob_write_over_limit_removes_the_temp_file(tmp_path: Path) -> None:
    blobs = Blobs(tmp_path)
    with pytest.raises(BlobTooLarge):
        asyncio.run(blobs.write(chunks(b"x" * 100), limit=10))
    assert list(blobs.tmp.iterdir()) == []


def test_blob_commit_and_ranged_read(tmp_path: Path) -> None:
    blobs = Blobs(tmp_path)
    written = asyncio.run(blobs.write(chunks(bytes(range(256)) * 10)))
    blobs.commit(written, "k1")

    async def read() -> bytes:
        return b"".join([c async for c in blobs.read("k1", 10, 20)])

    assert asyncio.run(read()) == bytes(range(10, 20))


def test_check_refuses_a_qcow2_with_a_backing_file(tmp_path: Path) -> None:
    info = {"format": "qcow2", "virtual-size": 1, "backing-filename": "/etc/passwd"}
    with pytest.raises(ImageRejected, match="backing"):
        check(info, "qcow2", tmp_path / "x")


def test_check_refuses_flat_vmdk_subformats(tmp_path: Path) -> None:
    info = {
        "format": "vmdk",
        "virtual-size": 1,
        "format-specific": {"data": {"create-type": "monolithicFlat"}},
    }
    with pytest.raises(ImageRejected, match="subformat"):
        check(info, "vmdk", tmp_path / "x")

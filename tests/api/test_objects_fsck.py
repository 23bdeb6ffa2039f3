"""`nube fsck` against a real data directory: objects made with boto3 through `nube serve`, the
server stopped, blob files deleted, corrupted, truncated and added by hand, then fsck run."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.harness import BIN, Nube
from tests.api.s3_helpers import admin_keys, bucket_name, client

MiB = 1024 * 1024


def fsck(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "nube"), "fsck", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def blob_paths(data_dir: Path, bucket: str, key: str) -> list[Path]:
    with sqlite3.connect(data_dir / "nube.db") as db:
        (segments,) = db.execute(
            "SELECT segments FROM versions WHERE bucket = ? AND key = ? AND is_latest = 1",
            [bucket, key],
        ).fetchone()
    return [data_dir / "blobs" / s[0][:2] / s[0] for s in json.loads(segments)]


def inline_id(data_dir: Path, bucket: str, key: str) -> int:
    with sqlite3.connect(data_dir / "nube.db") as db:
        (segments,) = db.execute(
            "SELECT segments FROM versions WHERE bucket = ? AND key = ? AND is_latest = 1",
            [bucket, key],
        ).fetchone()
    (segment,) = json.loads(segments)
    assert segment[0].startswith("inline:"), segment
    return int(segment[0].removeprefix("inline:"))


@dataclass
class Run:
    nube: Nube
    s3: Any
    bucket: str
    bodies: dict[str, bytes]
    while_serving: subprocess.CompletedProcess[str]
    check: subprocess.CompletedProcess[str]
    repair: subprocess.CompletedProcess[str]
    recheck: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    nube = Nube(tmp_path_factory.mktemp("fsck") / "data")
    nube.start()
    try:
        keys = admin_keys(nube)
        s3 = client(nube, keys)
        bucket = bucket_name()
        s3.create_bucket(Bucket=bucket)
        bodies = {  # 80 KB and more: blob files; the small-* ones live inline in the database
            "intact": b"fine" * 20000,
            "deleted": b"gone" * 20000,
            "corrupted": b"flip" * 20000,
            "truncated": b"short" * 20000,
            "small-intact": b"tiny" * 100,
            "small-deleted": b"lost" * 100,
            "small-corrupted": b"bent" * 100,
            "multipart-intact": b"m" * (5 * MiB) + b"tail",
            "multipart-corrupted": b"n" * (5 * MiB) + b"tail",
        }
        for key, body in bodies.items():
            if key.startswith("multipart"):
                up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
                parts = []
                for n, chunk in enumerate((body[: 5 * MiB], body[5 * MiB :]), 1):
                    etag = s3.upload_part(
                        Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=chunk
                    )["ETag"]
                    parts.append({"PartNumber": n, "ETag": etag})
                s3.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=up, MultipartUpload={"Parts": parts}
                )
            else:
                s3.put_object(Bucket=bucket, Key=key, Body=body)
        while_serving = fsck(nube.data_dir)
    except BaseException:
        nube.stop()
        raise
    nube.stop()
    data = nube.data_dir
    blob_paths(data, bucket, "deleted")[0].unlink()
    corrupted = blob_paths(data, bucket, "corrupted")[0]
    corrupted.write_bytes(b"FLIP" + corrupted.read_bytes()[4:])
    truncated = blob_paths(data, bucket, "truncated")[0]
    truncated.write_bytes(truncated.read_bytes()[:-1])
    second = blob_paths(data, bucket, "multipart-corrupted")[1]
    second.write_bytes(b"TAIL")
    orphan = data / "blobs" / "ab" / ("ab" + "0" * 30 + ".obj")
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"nobody's")
    (data / "blobs" / "tmp" / "deadbeef.part").write_bytes(b"half an upload")
    with sqlite3.connect(data / "nube.db") as db:
        db.execute(
            "DELETE FROM inline_data WHERE id = ?", [inline_id(data, bucket, "small-deleted")]
        )
        db.execute(
            "UPDATE inline_data SET data = ? WHERE id = ?",
            [b"BENT" + b"bent" * 99, inline_id(data, bucket, "small-corrupted")],
        )
        db.execute("INSERT INTO inline_data (id, data) VALUES (99999, x'6e6f626f6479')")
    check = fsck(data)
    repair = fsck(data, "--repair")
    recheck = fsck(data)
    nube.start()
    yield Run(nube, s3, bucket, bodies, while_serving, check, repair, recheck)
    nube.stop()


def test_fsck_refuses_while_nube_serve_holds_the_data_dir(run: Run) -> None:
    assert run.while_serving.returncode == 2
    assert "refusing to run" in run.while_serving.stderr
    assert "already using" in run.while_serving.stderr


def test_fsck_reports_each_broken_object_orphan_and_temp_file(run: Run) -> None:
    out = run.check.stdout
    assert run.check.returncode == 1, run.check.stderr
    b = run.bucket
    assert f"missing-blob: {b}/deleted" in out
    assert f"bad-md5: {b}/corrupted" in out
    assert f"bad-size: {b}/truncated" in out
    assert f"bad-md5: {b}/multipart-corrupted" in out
    assert "orphan-blob: ab" + "0" * 30 + ".obj" in out
    assert "temp-file: blobs/tmp/deadbeef.part" in out
    assert f"missing-blob: {b}/small-deleted" in out
    assert f"bad-md5: {b}/small-corrupted" in out
    assert "orphan-blob: inline:99999" in out
    assert "intact" not in out
    assert "9 problem(s); run with --repair to fix" in out


def test_a_check_without_repair_changes_nothing(run: Run) -> None:
    assert "missing-blob" in run.repair.stdout  # the repair run still saw everything


def test_fsck_repair_leaves_a_clean_store(run: Run) -> None:
    assert run.repair.returncode == 0, run.repair.stderr
    assert "repaired" in run.repair.stdout
    assert run.recheck.returncode == 0, run.recheck.stdout
    assert "no problems" in run.recheck.stdout
    data = run.nube.data_dir
    assert not list((data / "blobs" / "tmp").glob("*.part"))
    assert not (data / "blobs" / "ab" / ("ab" + "0" * 30 + ".obj")).exists()
    # corrupted, truncated, both parts, and the corrupted inline object written out as a file
    assert len(list((data / "lost+found" / "objects").iterdir())) == 5
    with sqlite3.connect(data / "nube.db") as db:
        assert not db.execute("SELECT 1 FROM inline_data WHERE id = 99999").fetchone()


def test_after_repair_intact_objects_read_back_and_broken_ones_are_gone(run: Run) -> None:
    s3, b = run.s3, run.bucket
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=b)["Contents"]}
    assert set(listed) == {"intact", "multipart-intact", "small-intact"}
    for key in listed:
        body = s3.get_object(Bucket=b, Key=key)["Body"].read()
        assert hashlib.md5(body).digest() == hashlib.md5(run.bodies[key]).digest()
    for key in ("deleted", "corrupted", "truncated", "multipart-corrupted", "small-deleted",
                "small-corrupted"):  # fmt: skip
        with pytest.raises(ClientError) as exc:
            s3.head_object(Bucket=b, Key=key)
        assert exc.value.response["Error"]["Code"] == "404"


def gone_soon(paths: list[Path], seconds: float = 10.0) -> bool:
    """Blob files a committed row stopped naming are unlinked in the background, just after."""
    deadline = time.monotonic() + seconds
    while any(p.exists() for p in paths):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_replaced_deleted_and_unused_blobs_are_removed_from_disk(run: Run) -> None:
    s3, b, data = run.s3, run.bucket, run.nube.data_dir
    s3.put_object(Bucket=b, Key="replaced", Body=b"old" * 40000)
    old = blob_paths(data, b, "replaced")
    s3.put_object(Bucket=b, Key="replaced", Body=b"new" * 40000)
    new = blob_paths(data, b, "replaced")
    assert old != new and all(p.exists() for p in new)
    assert gone_soon(old)
    s3.delete_object(Bucket=b, Key="replaced")
    assert gone_soon(new)
    up = s3.create_multipart_upload(Bucket=b, Key="parts")["UploadId"]
    etags = [
        s3.upload_part(Bucket=b, Key="parts", UploadId=up, PartNumber=n, Body=bytes([n]) * 5 * MiB)[
            "ETag"
        ]
        for n in (1, 2, 3)
    ]
    with sqlite3.connect(data / "nube.db") as db:
        part_blobs = dict(
            db.execute("SELECT part_number, blob FROM parts WHERE upload_id = ?", [up])
        )
    s3.complete_multipart_upload(  # part 2 is left out: its blob has no use any more
        Bucket=b,
        Key="parts",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n - 1]} for n in (1, 3)]},
    )
    kept = blob_paths(data, b, "parts")
    assert [p.name for p in kept] == [part_blobs[1], part_blobs[3]]
    assert gone_soon([data / "blobs" / part_blobs[2][:2] / part_blobs[2]])
    assert all(p.exists() for p in kept)
    assert (
        s3.get_object(Bucket=b, Key="parts")["Body"].read() == b"\x01" * 5 * MiB + b"\x03" * 5 * MiB
    )
    s3.delete_object(Bucket=b, Key="parts")
    assert gone_soon(kept)

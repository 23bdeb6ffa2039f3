"""Crash safety: `kill -9` of nube serve in the middle of 50 concurrent boto3 uploads, then restart.

An upload that got a 200 must survive whole; one that did not may be there or not, but never in
part; start-up leaves no temp files or orphan blobs behind (checked with `nube fsck`)."""

from __future__ import annotations

import hashlib
import io
import random
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from tests.api.harness import BIN, Nube
from tests.api.s3_helpers import admin_keys, bucket_name, client

KiB, MiB = 1024, 1024 * 1024
PART = 5 * MiB
# Big objects go multipart (5 MiB parts), the rest are single PUTs.
TRANSFER = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=PART, max_concurrency=2)


def sizes() -> list[int]:
    rng = random.Random(7)
    small = [rng.randint(0, 256 * KiB) for _ in range(38)]
    medium = [rng.randint(1 * MiB, 7 * MiB) for _ in range(8)]
    large = [rng.randint(9 * MiB, 16 * MiB) for _ in range(4)]
    return small + medium + large


def body(i: int, size: int) -> bytes:
    return random.Random(i).randbytes(size)


def etag(data: bytes) -> str:
    if len(data) < TRANSFER.multipart_threshold:
        return hashlib.md5(data).hexdigest()
    parts = [data[at : at + PART] for at in range(0, len(data), PART)]
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(joined).hexdigest()}-{len(parts)}"


@pytest.mark.parametrize("kill_after", [3, 20])
def test_kill_9_mid_upload_keeps_acknowledged_objects_and_shows_no_partial_ones(
    tmp_path: Path, kill_after: int
) -> None:
    nube = Nube(tmp_path / "data")
    nube.start()
    try:
        keys = admin_keys(nube)
        bucket = bucket_name()
        client(nube, keys).create_bucket(Bucket=bucket)
        # No retries: an upload either got its 200 from the server we kill, or failed.
        s3 = client(nube, keys, retries={"max_attempts": 1}, max_pool_connections=60)
        bodies = {f"obj-{i:02d}": body(i, n) for i, n in enumerate(sizes())}
        acknowledged: set[str] = set()
        lock = threading.Lock()
        enough = threading.Event()

        def upload(key: str) -> None:
            s3.upload_fileobj(io.BytesIO(bodies[key]), bucket, key, Config=TRANSFER)
            with lock:
                acknowledged.add(key)
                if len(acknowledged) >= kill_after:
                    enough.set()

        with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
            futures = [pool.submit(upload, key) for key in bodies]
            assert enough.wait(timeout=120), "too few uploads finished before the kill"
            assert nube.proc is not None
            nube.proc.kill()  # SIGKILL: no shutdown handlers run
            nube.proc.wait()
            for f in futures:
                f.exception()  # wait for every upload to finish or fail
        failed = set(bodies) - acknowledged
        assert failed, "the kill came after every upload had finished; nothing was tested"
    finally:
        if nube.proc is not None and nube.proc.poll() is None:
            nube.proc.kill()
            nube.proc.wait()

    nube.start()
    try:
        s3 = client(nube, keys)
        listed = {
            o["Key"]: o
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])
        }
        assert acknowledged <= set(listed), f"lost: {sorted(acknowledged - set(listed))}"
        for key, entry in listed.items():
            want = bodies[key]
            assert entry["ETag"].strip('"') == etag(want), key
            assert entry["Size"] == len(want), key
            got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert hashlib.md5(got).digest() == hashlib.md5(want).digest(), key
        assert not list((nube.data_dir / "blobs" / "tmp").glob("*.part"))
    finally:
        nube.stop()
    check = subprocess.run(
        [str(BIN / "nube"), "fsck", "--data-dir", str(nube.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0 and "no problems" in check.stdout, check.stdout + check.stderr

"""Issue 7's done-when check: `aws s3 cp` of a 1 GiB file up and back gives the same bytes.

Part of the normal suite; it takes about half a minute (the file comes from os.urandom in 16 MiB
blocks, sha256 computed while writing; awscli uploads it multipart, 8 MiB parts, 10 threads)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from tests.api.harness import Nube
from tests.api.s3_helpers import admin_keys, bucket_name
from tests.api.test_s3_clients import aws_env, tool

GiB, BLOCK = 1 << 30, 16 << 20


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while data := fh.read(BLOCK):
            h.update(data)
    return h.hexdigest()


def test_aws_s3_cp_of_1_gib_up_and_back_keeps_every_byte(nube: Nube, tmp_path: Path) -> None:
    aws = [tool("aws"), "--endpoint-url", f"http://127.0.0.1:{nube.s3_port}"]
    env = aws_env(admin_keys(nube), tmp_path)
    source, back = tmp_path / "source.bin", tmp_path / "back.bin"
    digest = hashlib.sha256()
    with source.open("wb") as fh:
        for _ in range(GiB // BLOCK):
            block = os.urandom(BLOCK)
            digest.update(block)
            fh.write(block)
    bucket = bucket_name()
    for args in (
        ["s3", "mb", f"s3://{bucket}"],
        ["s3", "cp", "--only-show-errors", str(source), f"s3://{bucket}/big.bin"],
        ["s3", "cp", "--only-show-errors", f"s3://{bucket}/big.bin", str(back)],
    ):
        done = subprocess.run([*aws, *args], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"aws {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    source.unlink()
    assert back.stat().st_size == GiB
    assert sha256_of(back) == digest.hexdigest()
    done = subprocess.run(
        [*aws, "s3", "rm", f"s3://{bucket}/big.bin"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0

"""Full-object and CRC32C/CRC64NVME checksums with real clients against a real nube serve:
boto3 as `pip install boto3` runs it (.venv), and boto3 with awscrt, the AWS CLI v2's
configuration, which computes CRC32C and CRC64NVME itself (.venv-crt, made by tests/run.sh)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.api.harness import Nube
from tests.api.s3_helpers import (
    Keys,
    admin_keys,
    bucket_name,
    client,
    code,
    keys_in,
    other_project_keys,
)

MiB = 1 << 20
PARTS = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
CRT_PYTHON = Path(__file__).resolve().parents[2] / ".venv-crt" / "bin" / "python"


@pytest.fixture(scope="module")
def keys(nube: Nube) -> Keys:
    return admin_keys(nube)


@pytest.fixture(scope="module")
def s3(nube: Nube, keys: Keys) -> Any:
    return client(nube, keys)


@pytest.fixture(scope="module")
def intruder(nube: Nube) -> Any:
    return client(nube, other_project_keys(nube))


@pytest.fixture
def bucket(s3: Any) -> str:
    name = bucket_name()
    s3.create_bucket(Bucket=name)
    return name


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_upload_file_with_the_whole_objects_crc32_is_a_full_object_checksum(
    s3: Any, intruder: Any, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(16 * MiB + 4321)  # four parts
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    # s3transfer makes this a FULL_OBJECT upload; the server combines the parts' CRCs
    s3.upload_file(str(src), bucket, "k", Config=PARTS, ExtraArgs={"ChecksumCRC32": crc32(data)})
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (crc32(data), "FULL_OBJECT")
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == data  # botocore checks the full-object CRC32 while reading
    with pytest.raises(ClientError) as exc:
        intruder.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert exc.value.response["Error"]["Code"] == "403"


def test_a_wrong_whole_object_checksum_fails_the_completion_and_leaves_nothing(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(11 * MiB)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    with pytest.raises(S3UploadFailedError, match="BadDigest"):
        s3.upload_file(str(src), bucket, "k", Config=PARTS,
                       ExtraArgs={"ChecksumCRC32": crc32(data + b"!")})  # fmt: skip
    assert keys_in(s3, bucket) == []
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # aborted


def test_completion_checks_the_declared_size_and_checksum_type(s3: Any, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="CRC32",
                                    ChecksumType="FULL_OBJECT")  # fmt: skip
    uid, body = up["UploadId"], b"x" * 1000
    part = s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=body,
                          ChecksumAlgorithm="CRC32")  # fmt: skip
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    for extra in ({"MpuObjectSize": 999}, {"ChecksumType": "COMPOSITE"}):
        with pytest.raises(ClientError) as exc:
            s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid,
                                         MultipartUpload=parts, **extra)  # fmt: skip
        assert code(exc) == "InvalidRequest", extra
    assert keys_in(s3, bucket) == []
    done = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload=parts,
                                        MpuObjectSize=1000, ChecksumCRC32=crc32(body))  # fmt: skip
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (crc32(body), "FULL_OBJECT")


def test_checksum_algorithm_and_type_must_agree(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="SHA256",
                                   ChecksumType="FULL_OBJECT")  # fmt: skip
    assert code(exc) == "InvalidRequest"
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="CRC64NVME")[
        "UploadId"
    ]
    with pytest.raises(ClientError) as exc:  # a CRC32 part cannot join a CRC64NVME upload
        s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=b"x",
                       ChecksumAlgorithm="CRC32")  # fmt: skip
    assert code(exc) == "InvalidRequest"
    assert s3.list_parts(Bucket=bucket, Key="k", UploadId=uid).get("Parts", []) == []
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uid)


def test_boto3_with_awscrt_crc32c_and_crc64nvme(
    nube: Nube, keys: Keys, s3: Any, intruder: Any, bucket: str, tmp_path: Path
) -> None:
    if not CRT_PYTHON.exists():
        pytest.skip(f"{CRT_PYTHON} is missing: tests/run.sh makes it (boto3[crt])")
    script = Path(__file__).with_name("crt_client.py")
    endpoint = f"http://127.0.0.1:{nube.s3_port}"
    done = subprocess.run(
        [str(CRT_PYTHON), str(script), endpoint, keys.access, keys.secret, bucket, str(tmp_path)],
        capture_output=True, text=True, timeout=300, env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["has_crt"] is True  # botocore really ran with the CRT
    for algorithm in ("CRC32C", "CRC64NVME"):
        assert seen[f"small {algorithm}"] == {"sent": True, "returned": True, "same bytes": True}
        assert seen[f"claimed {algorithm}"] is True
        assert seen[f"wrong claim {algorithm}"] == "BadDigest"
        assert seen[f"upload_file {algorithm}"]["size"] is True
    # CRC64NVME is always full-object: the combined CRC equals awscrt's CRC of the whole file
    full = seen["upload_file CRC64NVME"]
    assert (full["type"], full["checksum"]) == ("FULL_OBJECT", full["full object crc"])
    composite = seen["upload_file CRC32C"]
    assert composite["type"] == "COMPOSITE" and composite["checksum"].endswith("-5")
    assert seen["keys"] == sorted(
        f"{kind}-{a}" for kind in ("small", "big", "claimed") for a in ("CRC32C", "CRC64NVME")
    )
    assert seen["uploads left"] == 0
    for key in seen["keys"]:
        with pytest.raises(ClientError) as exc:
            intruder.get_object(Bucket=bucket, Key=key)
        assert code(exc) == "AccessDenied"

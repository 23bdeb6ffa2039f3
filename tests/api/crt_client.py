"""boto3 with awscrt installed, as the AWS CLI v2 ships it: run by test_s3_crt.py with .venv-crt's
Python (no pytest there). botocore then signs with the CRT signers and computes CRC32C and
CRC64NVME itself. (boto3's CRT transfer client is not used: it ignores endpoint_url and would
talk to AWS.)

Usage: crt_client.py ENDPOINT ACCESS SECRET BUCKET WORKDIR. Prints one JSON object: what each
step saw, for the test to assert on. Checksums to compare against come from awscrt, not from
the library the server uses."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import boto3
import botocore.compat
from awscrt import checksums
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

MiB = 1 << 20
CRCS = {
    "CRC32C": lambda data: checksums.crc32c(data).to_bytes(4, "big"),
    "CRC64NVME": lambda data: checksums.crc64nvme(data).to_bytes(8, "big"),
}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def error_code(call: Any, *args: Any, **kwargs: Any) -> str:
    try:
        call(*args, **kwargs)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    except Exception as exc:  # s3transfer wraps the ClientError of a failed upload
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError):
            return str(cause.response["Error"]["Code"])
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def main(endpoint: str, access: str, secret: str, bucket: str, work: Path) -> dict[str, Any]:
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    out: dict[str, Any] = {"has_crt": botocore.compat.HAS_CRT}
    data = os.urandom(21 * MiB + 12345)  # five 5 MiB parts and a short one
    src = work / "src.bin"
    src.write_bytes(data)
    parts = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    for algorithm, crc in CRCS.items():
        small = os.urandom(70_000)
        put = s3.put_object(Bucket=bucket, Key=f"small-{algorithm}", Body=small,
                            ChecksumAlgorithm=algorithm)  # fmt: skip
        got = s3.get_object(Bucket=bucket, Key=f"small-{algorithm}", ChecksumMode="ENABLED")
        out[f"small {algorithm}"] = {
            "sent": put.get(f"Checksum{algorithm}") == b64(crc(small)),
            "returned": got.get(f"Checksum{algorithm}") == b64(crc(small)),
            "same bytes": got["Body"].read()
            == small,  # botocore validates the checksum as it reads
        }
        # s3transfer: parts checksummed by botocore, the upload completed with them
        key = f"big-{algorithm}"
        s3.upload_file(str(src), bucket, key, Config=parts,
                       ExtraArgs={"ChecksumAlgorithm": algorithm})  # fmt: skip
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        out[f"upload_file {algorithm}"] = {
            "checksum": head.get(f"Checksum{algorithm}", ""),
            "type": head.get("ChecksumType", ""),
            "full object crc": b64(crc(data)),
            "size": head["ContentLength"] == len(data),
        }
        # s3transfer with the whole object's checksum given: FULL_OBJECT, checked at completion
        s3.upload_file(str(src), bucket, f"claimed-{algorithm}", Config=parts,
                       ExtraArgs={f"Checksum{algorithm}": b64(crc(data))})  # fmt: skip
        head = s3.head_object(Bucket=bucket, Key=f"claimed-{algorithm}", ChecksumMode="ENABLED")
        out[f"claimed {algorithm}"] = head.get(f"Checksum{algorithm}") == b64(crc(data))
        wrong = b64(crc(data[:-1] + b"?"))
        out[f"wrong claim {algorithm}"] = error_code(
            s3.upload_file, str(src), bucket, f"wrong-{algorithm}", Config=parts,
            ExtraArgs={f"Checksum{algorithm}": wrong},
        )  # fmt: skip
    left = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    out["keys"] = sorted(o["Key"] for o in left)
    out["uploads left"] = len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
    return out


if __name__ == "__main__":
    endpoint, access, secret, bucket, work = sys.argv[1:6]
    print(json.dumps(main(endpoint, access, secret, bucket, Path(work))))

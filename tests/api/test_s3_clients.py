"""awscli, s3cmd and rclone, unchanged, against a real nube serve."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api.harness import Nube
from tests.api.s3_helpers import Keys, admin_keys, bucket_name, client

BIN = Path(sys.prefix) / "bin"


@pytest.fixture(scope="module")
def keys(nube: Nube) -> Keys:
    return admin_keys(nube)


def run(args: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def aws_env(keys: Keys, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=keys.access,
        AWS_SECRET_ACCESS_KEY=keys.secret,
        AWS_DEFAULT_REGION="us-east-1",
        HOME=str(home),
    )
    return env


def tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (tests/run.sh installs it)")
    return str(path)


def test_aws_s3_cp_sync_ls_round_trip(nube: Nube, keys: Keys, tmp_path: Path) -> None:
    aws = [tool("aws"), "--endpoint-url", f"http://127.0.0.1:{nube.s3_port}"]
    env = aws_env(keys, tmp_path)
    bucket = bucket_name()
    run([*aws, "s3", "mb", f"s3://{bucket}"], env)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * 1024 * 1024))  # multipart (8 MiB parts)
    run([*aws, "s3", "cp", str(big), f"s3://{bucket}/big.bin"], env)
    back = tmp_path / "back.bin"
    run([*aws, "s3", "cp", f"s3://{bucket}/big.bin", str(back)], env)
    assert back.read_bytes() == big.read_bytes()
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.txt").write_text("b")
    run([*aws, "s3", "sync", str(tree), f"s3://{bucket}/tree"], env)
    listing = run([*aws, "s3", "ls", "--recursive", f"s3://{bucket}/tree/"], env)
    assert "tree/a.txt" in listing and "tree/sub/b.txt" in listing
    again = run([*aws, "s3", "sync", str(tree), f"s3://{bucket}/tree"], env)
    assert again.strip() == ""  # nothing changed, nothing uploaded
    run([*aws, "s3", "rm", "--recursive", f"s3://{bucket}"], env)
    run([*aws, "s3", "rb", f"s3://{bucket}"], env)


def test_aws_s3api_multipart(nube: Nube, keys: Keys, tmp_path: Path) -> None:
    import json

    aws = [tool("aws"), "--endpoint-url", f"http://127.0.0.1:{nube.s3_port}", "s3api"]
    env = aws_env(keys, tmp_path)
    bucket = bucket_name()
    run([*aws, "create-bucket", "--bucket", bucket], env)
    uid = json.loads(run([*aws, "create-multipart-upload", "--bucket", bucket, "--key", "k"], env))[
        "UploadId"
    ]
    part = tmp_path / "part"
    part.write_bytes(b"p" * 1000)
    etag = json.loads(
        run(
            [*aws, "upload-part", "--bucket", bucket, "--key", "k", "--upload-id", uid,
             "--part-number", "1", "--body", str(part)],
            env,
        )
    )["ETag"]  # fmt: skip
    spec = tmp_path / "parts.json"
    spec.write_text(json.dumps({"Parts": [{"PartNumber": 1, "ETag": etag}]}))
    run(
        [*aws, "complete-multipart-upload", "--bucket", bucket, "--key", "k", "--upload-id", uid,
         "--multipart-upload", f"file://{spec}"],
        env,
    )  # fmt: skip
    head = json.loads(run([*aws, "head-object", "--bucket", bucket, "--key", "k"], env))
    assert head["ContentLength"] == 1000 and head["ETag"].endswith('-1"')


def test_s3cmd_put_get_ls_del(nube: Nube, keys: Keys, tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{nube.s3_port}"
    config = tmp_path / "s3cfg"
    config.write_text(
        "[default]\n"
        f"access_key = {keys.access}\nsecret_key = {keys.secret}\n"
        f"host_base = {endpoint}\nhost_bucket = {endpoint}\n"
        "use_https = False\nsignature_v2 = False\n"
    )
    s3cmd = [tool("s3cmd"), "-c", str(config)]
    bucket = bucket_name()
    run([*s3cmd, "mb", f"s3://{bucket}"])
    src = tmp_path / "file.txt"
    src.write_bytes(os.urandom(100_000))
    run([*s3cmd, "put", str(src), f"s3://{bucket}/dir/file.txt"])
    assert "dir/file.txt" in run([*s3cmd, "ls", "-r", f"s3://{bucket}"])
    out = tmp_path / "out.txt"
    run([*s3cmd, "get", f"s3://{bucket}/dir/file.txt", str(out)])
    assert out.read_bytes() == src.read_bytes()
    big = tmp_path / "big"
    big.write_bytes(os.urandom(16 * 1024 * 1024))  # s3cmd's multipart (15 MiB chunks)
    run([*s3cmd, "put", str(big), f"s3://{bucket}/big"])
    run([*s3cmd, "get", "--force", f"s3://{bucket}/big", str(out)])
    assert out.read_bytes() == big.read_bytes()
    run([*s3cmd, "del", "--recursive", "--force", f"s3://{bucket}"])
    run([*s3cmd, "rb", f"s3://{bucket}"])


def test_rclone_copy_check_and_ls(nube: Nube, keys: Keys, tmp_path: Path) -> None:
    rclone = tool("rclone")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "RCLONE_CONFIG_NUBE_TYPE": "s3",
        "RCLONE_CONFIG_NUBE_PROVIDER": "Other",
        "RCLONE_CONFIG_NUBE_ACCESS_KEY_ID": keys.access,
        "RCLONE_CONFIG_NUBE_SECRET_ACCESS_KEY": keys.secret,
        "RCLONE_CONFIG_NUBE_ENDPOINT": f"http://127.0.0.1:{nube.s3_port}",
        "RCLONE_CONFIG": str(tmp_path / "none.conf"),
    }
    bucket = bucket_name()
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "small").write_bytes(os.urandom(1000))
    (src / "d" / "large").write_bytes(os.urandom(12 * 1024 * 1024))  # multipart in 5 MiB chunks
    run([rclone, "mkdir", f"nube:{bucket}"], env)
    run([rclone, "copy", "--s3-upload-cutoff", "5M", str(src), f"nube:{bucket}"], env)
    run([rclone, "check", str(src), f"nube:{bucket}"], env)
    listing = run([rclone, "ls", f"nube:{bucket}"], env)
    assert "small" in listing and "d/large" in listing
    dst = tmp_path / "dst"
    run([rclone, "copy", f"nube:{bucket}", str(dst)], env)
    assert (dst / "d" / "large").read_bytes() == (src / "d" / "large").read_bytes()
    run([rclone, "purge", f"nube:{bucket}"], env)


def test_objects_written_by_one_client_are_read_by_another(
    nube: Nube, keys: Keys, tmp_path: Path
) -> None:
    s3: Any = client(nube, keys)
    bucket = bucket_name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="from-boto3", Body=b"shared bytes")
    aws = [tool("aws"), "--endpoint-url", f"http://127.0.0.1:{nube.s3_port}"]
    out = tmp_path / "out"
    run([*aws, "s3", "cp", f"s3://{bucket}/from-boto3", str(out)], aws_env(keys, tmp_path))
    assert out.read_bytes() == b"shared bytes"

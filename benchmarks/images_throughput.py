"""Image data throughput: upload (`PUT /v2/images/{id}/file`) and download of a 1 GiB image through
`nube serve`, against this machine's own disk copy speed (`dd ... conv=fsync`) in the same run.

    sudo .venv/bin/python benchmarks/images_throughput.py [--size-mib 1024]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

BIN = Path(sys.prefix) / "bin"
PASSWORD = "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dd_copy(src: Path, dest: Path) -> float:
    """MB/s of the disk copying the same file with fsync at the end (the reference)."""
    start = time.monotonic()
    subprocess.run(
        ["dd", f"if={src}", f"of={dest}", "bs=1M", "conv=fsync", "status=none"], check=True
    )
    seconds = time.monotonic() - start
    dest.unlink()
    return src.stat().st_size / seconds / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nube-bench-images-", dir="/var/tmp"))
    data_dir = work / "data"
    port, s3 = free_port(), free_port()
    env = {**os.environ, "NUBE_ADMIN_PASSWORD": PASSWORD, "NUBE_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([str(BIN / "nube"), "serve", "--data-dir", str(data_dir), "--bind", "127.0.0.1", "--port",
                             str(port), "--s3-port", str(s3)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        source = work / "source.raw"
        with source.open("wb") as fh:
            chunk = os.urandom(1 << 20)
            for i in range(args.size_mib):
                fh.write(chunk[i % 256 :] + chunk[: i % 256])
        for _ in range(300):
            try:
                if requests.get(f"{url}/identity", timeout=1).status_code == 300:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": PASSWORD}}},
                         "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}  # fmt: skip
        token = requests.post(f"{url}/identity/v3/auth/tokens", json=body, timeout=30).headers[
            "X-Subject-Token"
        ]
        h = {"X-Auth-Token": token}
        dd_before = dd_copy(source, work / "dd.out")
        image = requests.post(
            f"{url}/image/v2/images",
            json={"name": "big", "disk_format": "raw", "container_format": "bare"},
            headers=h,
            timeout=30,
        ).json()
        file_url = f"{url}/image/v2/images/{image['id']}/file"
        auth = ["-H", f"X-Auth-Token: {token}"]
        start = time.monotonic()
        subprocess.run(["curl", "-sf", "-X", "PUT", *auth, "-H", "Content-Type: application/octet-stream",
                        "-T", str(source), file_url], check=True)  # fmt: skip
        upload = source.stat().st_size / (time.monotonic() - start) / 1e6
        start = time.monotonic()
        subprocess.run(
            ["curl", "-sf", *auth, "-o", str(work / "download.raw"), file_url], check=True
        )
        download = source.stat().st_size / (time.monotonic() - start) / 1e6
        digest = hashlib.sha512()
        with (work / "download.raw").open("rb") as fh:
            while part := fh.read(1 << 20):
                digest.update(part)
        (work / "download.raw").unlink()
        shown = requests.get(f"{url}/image/v2/images/{image['id']}", headers=h, timeout=30).json()
        assert shown["os_hash_value"] == digest.hexdigest(), "downloaded bytes differ"
        dd_after = dd_copy(source, work / "dd.out")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    dd = (dd_before + dd_after) / 2
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    report = "\n".join([
        "## Images: upload and download throughput",
        "",
        f"Produced by `sudo .venv/bin/python benchmarks/images_throughput.py --size-mib {args.size_mib}` on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}.",
        "",
        f"A {args.size_mib} MiB raw image streamed with `curl` over loopback into `PUT /v2/images/{{id}}/file` "
        "(hashed md5 + sha256 + sha512 while streaming, fsync'd, inspected with `qemu-img info`, renamed) and back "
        "with `GET .../file` (sha512 checked). The reference is `dd bs=1M conv=fsync` of the same file on the "
        "same disk, before and after (mean).",
        "",
        "| what | MB/s | share of dd |",
        "| --- | ---: | ---: |",
        f"| dd copy with fsync (before / after) | {dd_before:.0f} / {dd_after:.0f} | 100 % |",
        f"| upload through Nube | {upload:.0f} | {upload / dd * 100:.0f} % |",
        f"| download through Nube | {download:.0f} | {download / dd * 100:.0f} % |",
        "",
        f"Target: at least 60 % of the disk copy speed: upload {'met' if upload >= 0.6 * dd else 'missed'}, "
        f"download {'met' if download >= 0.6 * dd else 'missed'}.",
    ])  # fmt: skip
    print(report)
    write_section("images_throughput", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

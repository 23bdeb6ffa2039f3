"""Compute benchmark: time from `POST /servers` to the guest's `NUBE-TINY READY` line, for direct
kernel boot and disk boot of nube-tiny, against the same guest started by a bare
`qemu-system-x86_64` in the same run (the floor); and `GET /servers/detail` latency with 1,000
servers in the database.

    sudo .venv/bin/python benchmarks/compute_boot.py [--runs 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

from appliance.compute.configdrive import build_config_drive

BIN = Path(sys.prefix) / "bin"
CACHE = Path(os.environ.get("NUBE_IMAGE_CACHE", "/var/cache/nube/images")) / "nube-tiny"
PASSWORD = "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_line(path: Path, marker: str, start: float, timeout: float = 300) -> float:
    while time.monotonic() - start < timeout:
        if path.exists() and marker in path.read_text(errors="replace"):
            return time.monotonic() - start
        time.sleep(0.05)
    raise TimeoutError(f"no {marker!r} in {path} after {timeout} s")


def bare_qemu(workdir: Path, disk_boot: bool) -> float:
    """The floor: the same guest, same memory, started directly by QEMU under TCG."""
    manifest = json.loads((CACHE / "manifest.json").read_text())
    overlay = workdir / f"bare-{uuid.uuid4().hex[:6]}.qcow2"
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            str(CACHE / "disk.qcow2"),
            str(overlay),
        ],
        check=True,
    )
    log = workdir / f"bare-{uuid.uuid4().hex[:6]}.log"
    # The same config drive Nube gives its servers (IDE cdrom), so the guest does the same work.
    drive = workdir / f"bare-{uuid.uuid4().hex[:6]}.iso"
    build_config_drive(drive, {"uuid": str(uuid.uuid4()), "name": "bench", "hostname": "bench"}, None,
                       {"links": [], "networks": [], "services": []})  # fmt: skip
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", "128", "-display", "none", "-no-user-config",
           "-nodefaults", "-serial", f"file:{log}", "-drive", f"file={overlay},if=virtio",
           "-drive", f"file={drive},if=ide,index=3,media=cdrom,format=raw,readonly=on"]  # fmt: skip
    if not disk_boot:
        cmd += [
            "-kernel",
            str(CACHE / "vmlinux"),
            "-initrd",
            str(CACHE / "initrd.img"),
            "-append",
            manifest["kernel_cmdline"],
        ]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return wait_line(log, "NUBE-TINY READY", start)
    finally:
        proc.kill()
        proc.wait()
        overlay.unlink(missing_ok=True)
        drive.unlink(missing_ok=True)


class Server:
    def __init__(self, data_dir: Path, log: Path | None = None) -> None:
        self.data_dir, self.port, self.s3 = data_dir, free_port(), free_port()
        self.log = log  # nube serve's log at info level (otherwise discarded)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        level = "info" if self.log else "warning"
        env = {**os.environ, "NUBE_ADMIN_PASSWORD": PASSWORD, "NUBE_LOG_LEVEL": level}
        with (self.log or Path(os.devnull)).open("ab") as out:
            self.proc = subprocess.Popen([str(BIN / "nube"), "serve", "--data-dir", str(self.data_dir), "--bind", "127.0.0.1",
                                          "--port", str(self.port), "--s3-port", str(self.s3), "--public-cidr", ""], env=env,
                                         stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        for _ in range(300):
            try:
                if requests.get(f"{self.url}/identity", timeout=1).status_code == 300:
                    return
            except requests.RequestException:  # not listening yet, or busy starting up
                time.sleep(0.1)
        raise RuntimeError("nube serve did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)

    def token(self) -> str:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": PASSWORD}}},
                         "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}  # fmt: skip
        return requests.post(f"{self.url}/identity/v3/auth/tokens", json=body, timeout=30).headers[
            "X-Subject-Token"
        ]


def nube_boot(server: Server, token: str, image_id: str, label: str) -> float:
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.96"}
    start = time.monotonic()
    r = requests.post(f"{server.url}/compute/v2.1/servers", headers=headers, timeout=30,
                      json={"server": {"name": label, "imageRef": image_id, "flavorRef": "42", "networks": "none"}})  # fmt: skip
    r.raise_for_status()
    server_id = r.json()["server"]["id"]
    try:
        return wait_line(
            server.data_dir / "instances" / server_id / "console.log", "NUBE-TINY READY", start
        )
    finally:
        requests.delete(
            f"{server.url}/compute/v2.1/servers/{server_id}", headers=headers, timeout=30
        )
        for _ in range(600):
            if (
                requests.get(
                    f"{server.url}/compute/v2.1/servers/{server_id}", headers=headers, timeout=30
                ).status_code
                == 404
            ):
                break
            time.sleep(0.1)


def disk_only_image(server: Server, token: str) -> str:
    """nube-tiny's disk without kernel_id/ramdisk_id, so Nova-style boot goes through the BIOS."""
    h = {"X-Auth-Token": token}
    made = requests.post(f"{server.url}/image/v2/images", headers=h, timeout=30, json={
        "name": "nube-tiny-disk-boot", "disk_format": "qcow2", "container_format": "bare"}).json()  # fmt: skip
    with (CACHE / "disk.qcow2").open("rb") as fh:
        requests.put(f"{server.url}/image/v2/images/{made['id']}/file", data=fh, timeout=300,
                     headers={**h, "Content-Type": "application/octet-stream"}).raise_for_status()  # fmt: skip
    return str(made["id"])


def list_latency(workdir: Path, count: int = 1000, samples: int = 50) -> tuple[float, float]:
    """p50/p99 ms of GET /servers/detail with `count` server rows (rows only: no VMs behind them)."""
    server = Server(workdir / "list-data")
    server.start()
    token = server.token()
    server.stop()
    db = sqlite3.connect(server.data_dir / "nube.db")
    project = db.execute("SELECT id FROM projects WHERE name = 'admin'").fetchone()[0]
    user = db.execute("SELECT id FROM users WHERE name = 'admin'").fetchone()[0]
    flavor = json.dumps(
        {
            "id": "42",
            "name": "m1.nano",
            "vcpus": 1,
            "ram": 128,
            "disk": 1,
            "ephemeral": 0,
            "swap": 0,
            "extra_specs": {},
        }
    )
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with db:
        for i in range(count):
            db.execute("INSERT INTO servers (id, name, project_id, user_id, image_id, flavor, vm_state, power_state, reservation_id, "
                       "hostname, created_at, updated_at) VALUES (?,?,?,?,?,?,'stopped',4,'r-1',?,?,?)",
                       [str(uuid.uuid4()), f"s{i}", project, user, str(uuid.uuid4()), flavor, f"s{i}", now, now])  # fmt: skip
    db.close()
    # keep the rows: a start-up reconcile would mark server rows without domains as ERROR, which is fine for a list
    server.start()
    token = server.token()
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.96"}
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        r = requests.get(f"{server.url}/compute/v2.1/servers/detail", headers=headers, timeout=60)
        times.append((time.perf_counter() - t) * 1000)
        assert len(r.json()["servers"]) == count
    server.stop()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not (CACHE / "manifest.json").exists():
        print(f"no nube-tiny build in {CACHE}: run images/build-nube-tiny.sh", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="nube-bench-compute-"))
    rows: list[tuple[str, list[float], list[float]]] = []
    server = Server(workdir / "data")
    try:
        server.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        subprocess.run(
            [str(BIN / "nube"), "image", "import-default", "--data-dir", str(server.data_dir)],
            env=env,
            check=True,
            capture_output=True,
        )
        token = server.token()
        direct = requests.get(
            f"{server.url}/image/v2/images?name=nube-tiny",
            headers={"X-Auth-Token": token},
            timeout=30,
        ).json()["images"][0]["id"]
        disk = disk_only_image(server, token)
        for label, image_id, disk_boot in (
            ("direct kernel", direct, False),
            ("disk (BIOS)", disk, True),
        ):
            floor, nube = [], []
            for run in range(args.runs):
                floor.append(bare_qemu(workdir, disk_boot))
                nube.append(nube_boot(server, token, image_id, f"bench-{run}"))
                print(
                    f"{label} run {run + 1}: bare qemu {floor[-1]:.2f} s, nube {nube[-1]:.2f} s",
                    flush=True,
                )
            rows.append((label, floor, nube))
        server.stop()
        p50, p99 = list_latency(workdir)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    load = os.getloadavg()[0]
    lines = [
        "## Compute: boot to READY, and server list",
        "",
        f"Produced by `sudo .venv/bin/python benchmarks/compute_boot.py --runs {args.runs}` on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, TCG (no usable KVM here), load average {load:.1f} at the end.",
        "",
        "Time from `POST /servers` (m1.nano, `networks: none`, config drive) to the `NUBE-TINY READY` line on the",
        "serial console, against the same guest started by a bare `qemu-system-x86_64 -accel tcg -m 128` with the",
        "same kernel, initrd, a qcow2 overlay and the same kind of config drive (the floor), alternating in the same",
        "run. Median of the runs. The difference is what Nube and libvirt add: the API call, the job, the",
        "overlay and config drive, and libvirt defining and starting the domain (with VNC and a logged serial).",
        "",
        "| boot | bare QEMU (s) | Nube (s) | Nube adds (s) | target < 1 s |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for label, floor, nube in rows:
        added = statistics.median(nube) - statistics.median(floor)
        lines.append(
            f"| {label} | {statistics.median(floor):.2f} | {statistics.median(nube):.2f} | {added:+.2f} | {'met' if added < 1 else 'missed'} |"
        )
    lines += [
        "",
        f"`GET /compute/v2.1/servers/detail` (2.96) with 1,000 servers in the database, 50 sequential requests: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms.",
    ]
    report = "\n".join(lines)
    print(report)
    write_section("compute_boot", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

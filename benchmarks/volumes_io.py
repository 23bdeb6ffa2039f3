"""Volumes benchmark: sequential and random 4 KiB I/O inside a nube-tiny guest on a Nube volume,
against the same qcow2 file attached by a bare `qemu-system-x86_64` in the same run; and the
latency of volume create, attach (API to in-use, and to the guest seeing the disk) and snapshot.

    sudo .venv/bin/python benchmarks/volumes_io.py [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compute_boot import BIN, CACHE, Server, wait_line
from report import write_section

from appliance.compute.configdrive import build_config_drive

SEQ_MIB = 32
RANDOM_OPS = 300

# busybox only: dd for the I/O, /proc/uptime (centiseconds) for the clock; one process per random
# op, on both sides alike, so the comparison is fair even though fork cost is part of each op.
SCRIPT = """#!/bin/sh
SERIAL="{serial}"
(
while true; do
  for s in /sys/block/vd*/serial; do
    [ -f "$s" ] && [ "$(cat "$s")" = "$SERIAL" ] && break 2
  done
  sleep 0.2
done
dev=/dev/$(basename "$(dirname "$s")")
now() {{ read t _ < /proc/uptime; echo "$t"; }}
t0=$(now); dd if=/dev/zero of=$dev bs=1048576 count={seq} conv=fsync 2>/dev/null; t1=$(now)
echo 3 > /proc/sys/vm/drop_caches
dd if=$dev of=/dev/null bs=1048576 count={seq} 2>/dev/null; t2=$(now)
blocks=$(({seq} * 256)); i=0
while [ $i -lt {ops} ]; do
  dd if=/dev/zero of=$dev bs=4096 count=1 seek=$(((RANDOM * 32768 + RANDOM) % blocks)) conv=notrunc,fsync 2>/dev/null
  i=$((i + 1))
done
t3=$(now)
echo 3 > /proc/sys/vm/drop_caches
i=0
while [ $i -lt {ops} ]; do
  dd if=$dev of=/dev/null bs=4096 count=1 skip=$(((RANDOM * 32768 + RANDOM) % blocks)) iflag=direct 2>/dev/null
  i=$((i + 1))
done
t4=$(now)
echo "VOLBENCH $t0 $t1 $t2 $t3 $t4"
) >/dev/console 2>&1 &
"""


def parse(line: str) -> dict[str, float]:
    t0, t1, t2, t3, t4 = (float(x) for x in line.split()[1:6])
    return {
        "seq write MiB/s": SEQ_MIB / max(t1 - t0, 0.01),
        "seq read MiB/s": SEQ_MIB / max(t2 - t1, 0.01),
        "rand 4K write IOPS": RANDOM_OPS / max(t3 - t2, 0.01),
        "rand 4K read IOPS": RANDOM_OPS / max(t4 - t3, 0.01),
    }


def bench_line(path: Path, start: float, timeout: float = 900) -> str:
    wait_line(path, "VOLBENCH ", start, timeout)
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("VOLBENCH "):
            return line.strip()
    raise RuntimeError("no VOLBENCH line")


def bare_qemu(workdir: Path, volume: Path, serial: str) -> dict[str, float]:
    manifest = json.loads((CACHE / "manifest.json").read_text())
    overlay = workdir / f"bare-{uuid.uuid4().hex[:6]}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(CACHE / "disk.qcow2"),
                    str(overlay)], check=True)  # fmt: skip
    drive = workdir / f"bare-{uuid.uuid4().hex[:6]}.iso"
    build_config_drive(drive, {"uuid": str(uuid.uuid4()), "name": "bench", "hostname": "bench"},
                       SCRIPT.format(serial=serial, seq=SEQ_MIB, ops=RANDOM_OPS).encode(),
                       {"links": [], "networks": [], "services": []})  # fmt: skip
    log = workdir / f"bare-{uuid.uuid4().hex[:6]}.log"
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", "128", "-display", "none",
           "-no-user-config", "-nodefaults", "-serial", f"file:{log}",
           "-drive", f"file={overlay},if=virtio", "-drive", f"file={volume},if=none,id=vol,format=qcow2",
           "-device", f"virtio-blk-pci,drive=vol,serial={serial}",
           "-drive", f"file={drive},if=ide,index=3,media=cdrom,format=raw,readonly=on",
           "-kernel", str(CACHE / "vmlinux"), "-initrd", str(CACHE / "initrd.img"),
           "-append", manifest["kernel_cmdline"]]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1)
        if proc.poll() is not None:
            raise RuntimeError(
                f"qemu-system-x86_64 failed: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        return parse(bench_line(log, time.monotonic()))
    finally:
        proc.kill()
        proc.wait()
        overlay.unlink(missing_ok=True)
        drive.unlink(missing_ok=True)


class Api:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.h = {"X-Auth-Token": server.token(), "OpenStack-API-Version": "volume 3.71, compute 2.96",
                  "X-OpenStack-Nova-API-Version": "2.96"}  # fmt: skip

    def call(self, method: str, path: str, body: Any = None) -> Any:
        r = requests.request(
            method, f"{self.server.url}{path}", json=body, headers=self.h, timeout=60
        )
        r.raise_for_status()
        return r.json() if r.content else None

    def wait(self, path: str, key: str, status: str, timeout: float = 300) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            got = self.call("GET", path)[key]["status"]
            if got == status:
                return time.monotonic()
            if got.startswith("error") or got == "ERROR":
                raise RuntimeError(f"{path} went {got}")
            time.sleep(0.02)
        raise TimeoutError(f"{path} not {status}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not (CACHE / "manifest.json").exists():
        print(f"no nube-tiny build in {CACHE}: run images/build-nube-tiny.sh", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="nube-bench-volumes-"))
    server = Server(workdir / "data")
    latencies: dict[str, list[float]] = {"create 1 GiB (POST to available)": [],
                                         "attach (POST to in-use)": [],
                                         "attach (POST to the guest's BLOCK line)": [],
                                         "snapshot while attached (POST to available)": [],
                                         "detach (DELETE to available)": []}  # fmt: skip
    nube_io: list[dict[str, float]] = []
    bare_io: list[dict[str, float]] = []
    try:
        server.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        subprocess.run([str(BIN / "nube"), "image", "import-default", "--data-dir", str(server.data_dir)],
                       env=env, check=True, capture_output=True)  # fmt: skip
        api = Api(server)
        image = api.call("GET", "/image/v2/images?name=nube-tiny")["images"][0]["id"]
        for run in range(args.runs):
            t = time.monotonic()
            vol = api.call(
                "POST", "/volume/v3/volumes", {"volume": {"size": 1, "name": f"bench{run}"}}
            )["volume"]
            latencies["create 1 GiB (POST to available)"].append(
                api.wait(f"/volume/v3/volumes/{vol['id']}", "volume", "available") - t
            )
            serial = vol["id"][:20]
            script = SCRIPT.format(serial=serial, seq=SEQ_MIB, ops=RANDOM_OPS)
            made = api.call("POST", "/compute/v2.1/servers", {"server": {
                "name": f"bench{run}", "imageRef": image, "flavorRef": "42", "networks": "none",
                "user_data": base64.b64encode(script.encode()).decode()}})["server"]  # fmt: skip
            log = server.data_dir / "instances" / made["id"] / "console.log"
            wait_line(log, "NUBE-TINY READY", time.monotonic())
            t = time.monotonic()
            api.call("POST", f"/compute/v2.1/servers/{made['id']}/os-volume_attachments",
                     {"volumeAttachment": {"volumeId": vol["id"]}})  # fmt: skip
            latencies["attach (POST to in-use)"].append(
                api.wait(f"/volume/v3/volumes/{vol['id']}", "volume", "in-use") - t
            )
            latencies["attach (POST to the guest's BLOCK line)"].append(
                wait_line(log, f"serial={serial}", t)
            )
            nube_io.append(parse(bench_line(log, time.monotonic())))
            t = time.monotonic()
            snap = api.call(
                "POST",
                "/volume/v3/snapshots",
                {"snapshot": {"volume_id": vol["id"], "force": True}},
            )
            latencies["snapshot while attached (POST to available)"].append(
                api.wait(f"/volume/v3/snapshots/{snap['snapshot']['id']}", "snapshot", "available")
                - t
            )
            t = time.monotonic()
            api.call(
                "DELETE", f"/compute/v2.1/servers/{made['id']}/os-volume_attachments/{vol['id']}"
            )
            latencies["detach (DELETE to available)"].append(
                api.wait(f"/volume/v3/volumes/{vol['id']}", "volume", "available") - t
            )
            api.call("DELETE", f"/compute/v2.1/servers/{made['id']}")
            while requests.get(f"{server.url}/compute/v2.1/servers/{made['id']}", headers=api.h,
                               timeout=30).status_code != 404:  # fmt: skip
                time.sleep(0.1)
            bare_io.append(
                bare_qemu(
                    workdir, server.data_dir / "volumes" / f"volume-{vol['id']}.qcow2", serial
                )
            )
            print(f"run {run + 1}: nube {nube_io[-1]}, bare {bare_io[-1]}", flush=True)
            api.call("DELETE", f"/volume/v3/volumes/{vol['id']}?cascade=true")
            time.sleep(3)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")  # fmt: skip
    lines = [
        "## Volumes: I/O in the guest, and create/attach/snapshot latency",
        "",
        f"Produced by `sudo .venv/bin/python benchmarks/volumes_io.py --runs {args.runs}` on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, TCG (no usable KVM here), load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        f"Inside nube-tiny (m1.nano, busybox `dd`): {SEQ_MIB} MiB sequential write (1 MiB blocks, fsync) and read",
        f"(after dropping caches), then {RANDOM_OPS} random 4 KiB writes (each fsync'd) and reads, one `dd` each, on a",
        "1 GiB Nube volume hot-plugged by libvirt; then the same qcow2 file attached at boot by a bare",
        "`qemu-system-x86_64 -accel tcg -m 128` (virtio, QEMU's default cache) running the same script. Medians.",
        "Under TCG the guest's CPU (and one process per random op) bounds the numbers more than the disk does:",
        "compare the two columns, not the absolute values. With other VMs and tests sharing the two cores, runs",
        "differ by up to 2x either way; the printed per-run values show the spread.",
        "",
        "| measure | Nube volume | bare QEMU, same file | Nube / bare |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key in nube_io[0]:
        n, b = (
            statistics.median(r[key] for r in nube_io),
            statistics.median(r[key] for r in bare_io),
        )
        lines.append(f"| {key} | {n:.1f} | {b:.1f} | {n / b:.2f} |")
    lines += ["", "| operation | median (s) | runs |", "| --- | ---: | --- |"]
    for key, values in latencies.items():
        lines.append(
            f"| {key} | {statistics.median(values):.3f} | {', '.join(f'{x:.3f}' for x in values)} |"
        )
    report = "\n".join(lines)
    print(report)
    write_section("volumes", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Web console page times with 1,000 instances in the project: the server-side time of each page
(from nube's own request log line) and what a client on loopback waits, over sequential requests.

    sudo .venv/bin/python benchmarks/console_pages.py [--count 1000] [--samples 30]

The instances are rows only (no VMs behind them), inserted while nube is stopped, as
compute_boot.py does for its list benchmark: the pages read rows, never the hypervisor.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from report import write_section  # noqa: E402

from tests.api.harness import ADMIN_PASSWORD, Nube  # noqa: E402

PAGES = (
    ("overview", "/console/"),
    ("instances, page 1", "/console/instances"),
    ("instances, page 20", "/console/instances?page=20"),
    ("instance status poll (50 ids)", None),
    ("volumes", "/console/volumes"),
    ("networks (topology)", "/console/networks"),
)
LOG_LINE = re.compile(r"GET (\S+) 200 ([0-9.]+)ms (req-\S+)")


def insert_servers(db_path: Path, count: int) -> list[str]:
    db = sqlite3.connect(db_path)
    project = db.execute("SELECT id FROM projects WHERE name = 'admin'").fetchone()[0]
    user = db.execute("SELECT id FROM users WHERE name = 'admin'").fetchone()[0]
    flavor = json.dumps({"id": "42", "name": "m1.nano", "vcpus": 1, "ram": 128, "disk": 1,
                         "ephemeral": 0, "swap": 0, "extra_specs": {}})  # fmt: skip
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with db:
        for i, server_id in enumerate(ids):
            db.execute("INSERT INTO servers (id, name, project_id, user_id, image_id, flavor, vm_state, power_state, "
                       "reservation_id, hostname, created_at, updated_at) VALUES (?,?,?,?,?,?,'stopped',4,'r-1',?,?,?)",
                       [server_id, f"s{i}", project, user, str(uuid.uuid4()), flavor, f"s{i}", now, now])  # fmt: skip
    db.close()
    return ids


def login(nube: Nube) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{nube.url}/console/login", timeout=30).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    r = s.post(f"{nube.url}/console/login", timeout=30,
               data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": csrf.group(1)})  # fmt: skip
    assert r.status_code == 200 and "Overview of admin" in r.text, r.text[:500]
    return s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="nube-bench-console-"))
    nube = Nube(workdir / "data")
    try:
        nube.start()
        nube.stop()
        ids = insert_servers(nube.data_dir / "nube.db", args.count)
        nube.start()
        session = login(nube)
        status_url = "/console/instances/status?" + "&".join(f"id={i}" for i in ids[:50])
        rows = []
        for label, path in PAGES:
            path = path or status_url
            client: list[float] = []
            request_ids = set()
            for _ in range(args.samples):
                t = time.perf_counter()
                r = session.get(nube.url + path, timeout=60)
                client.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, (path, r.status_code)
                request_ids.add(r.headers["x-openstack-request-id"])
            for _ in range(100):  # the last log line may still be on its way to the file
                served = [
                    float(m.group(2))
                    for m in LOG_LINE.finditer(nube.log)
                    if m.group(3) in request_ids
                ]
                if len(served) == args.samples:
                    break
                time.sleep(0.1)
            assert len(served) == args.samples, (path, len(served))
            rows.append((label, statistics.median(served), max(served), statistics.median(client)))
    finally:
        if nube.proc is not None:
            nube.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    load = os.getloadavg()[0]
    lines = [
        "## Web console: page times with 1,000 instances",
        "",
        f"Produced by `sudo .venv/bin/python benchmarks/console_pages.py --count {args.count} "
        f"--samples {args.samples}` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load average {load:.1f} at the end.",
        "",
        f"{args.count:,} instance rows in the admin project; {args.samples} sequential requests per page "
        "with a logged-in session. Server time is nube's own request log line (middleware to last byte);",
        "client time is what `requests` on loopback waited. Target: under 100 ms server-side.",
        "",
        "| page | server p50 (ms) | server max (ms) | client p50 (ms) | target < 100 ms |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for label, p50, worst, client_p50 in rows:
        lines.append(
            f"| {label} | {p50:.1f} | {worst:.1f} | {client_p50:.1f} | {'met' if p50 < 100 else 'missed'} |"
        )
    report = "\n".join(lines)
    print(report)
    write_section("console_pages", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

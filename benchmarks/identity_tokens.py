"""Identity token benchmark: validation and issue latency/throughput, and idle RSS, of `nube serve`.

Starts its own `nube serve` (this Python's) on a fresh temp data dir and free loopback ports, drives
it with wrk (C, one thread, so the load generator leaves the server a core), prints a markdown report
and writes it to docs/benchmarks.md. Needs Debian's `wrk`: installed with apt-get when missing and
running as root, otherwise `apt-get install wrk` first.

    .venv/bin/python benchmarks/identity_tokens.py [--duration 10] [--issue-duration 8]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from appliance.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PASSWORD = "secret"
CLIENTS = (1, 8, 32)
RSS_TARGET_MIB = 120.0
P50_TARGET_MS = 2.0
RPS_TARGET = 1000.0
NOISY = 0.25  # cores used by other processes during a run that make it worth a retry
AUTH_BODY = {
    "auth": {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {"name": "admin", "domain": {"name": "Default"}, "password": PASSWORD}
            },
        },
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}},
    }
}
# wrk calls done() once at the end; one parseable line beats scraping its human-readable summary.
LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKRESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Run:
    name: str
    clients: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    bad_status: int
    socket_errors: int
    server_cpu: float  # cores the server used during the run (1.0 = one core busy)
    wrk_cpu: float
    other_cpu: float  # cores every other process on the machine used meanwhile (noise)


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("wrk is missing: run `apt-get install wrk` first")
    print("wrk is missing: installing it with apt-get", file=sys.stderr)
    install = ["apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], stdout=subprocess.DEVNULL, check=False)
        subprocess.run(install, stdout=subprocess.DEVNULL, check=True)
    return shutil.which("wrk") or sys.exit("wrk still missing after apt-get install")


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def busy_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (from /proc/stat)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_machine_quiet(limit: float) -> float:
    """Wait (up to `limit` s) until other processes use < 0.1 core; return what they last used."""
    deadline = time.monotonic() + limit
    while True:
        before = busy_seconds()
        time.sleep(2)
        others = (busy_seconds() - before) / 2
        if others < 0.1 or time.monotonic() > deadline:
            return others
        print(f"machine busy ({others:.2f} cores used by others): waiting", file=sys.stderr)


def wait_quiet(pid: int, timeout: float = 120.0) -> float:
    """Seconds until the server stops using CPU (it may still be working off abandoned requests)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        before = cpu_seconds(pid)
        time.sleep(1)
        if cpu_seconds(pid) - before < 0.02:
            break
    return time.monotonic() - start


def http(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.headers.get("X-Subject-Token", "")


def wait_ready(proc: subprocess.Popen[bytes], base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nube serve exited with {proc.returncode} during start-up")
        try:
            http(base + "/identity")
            return
        except urllib.error.HTTPError:
            return  # it answers (GET /identity is a 300 Multiple Choices)
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nube serve not ready after {timeout:.0f}s")


def wrk(binary: str, lua: Path, url: str, name: str, clients: int, seconds: int, pid: int) -> Run:
    cmd = [binary, "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "60s", "--latency"]
    cpu0, kids0, all0, t0 = cpu_seconds(pid), children_seconds(), busy_seconds(), time.monotonic()
    out = subprocess.run(
        [*cmd, "-s", str(lua), url], capture_output=True, text=True, check=True
    ).stdout
    wall = time.monotonic() - t0
    cpu, kids = (cpu_seconds(pid) - cpu0) / wall, (children_seconds() - kids0) / wall
    others = max(0.0, (busy_seconds() - all0) / wall - cpu - kids)
    m = re.search(r"^WRKRESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", out, re.M)
    if not m:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    requests, duration_us, p50, p99, bad, errs = map(int, m.groups())
    return Run(
        name,
        clients,
        requests,
        requests / (duration_us / 1e6),
        p50 / 1e3,
        p99 / 1e3,
        bad,
        errs,
        cpu,
        kids,
        others,
    )


def lua_file(path: Path, method: str, headers: dict[str, str], body: str = "") -> Path:
    lines = [f"wrk.method = {json.dumps(method)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    if body:
        lines.append(f"wrk.body = {json.dumps(body)}")
    path.write_text("\n".join(lines) + "\n" + LUA_DONE)
    return path


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(
        " Copyright"
    )[0]
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "CPU": model.group(1).strip() if model else "unknown",
        "Python": f"{platform.python_version()} ({sys.executable})",
        "OS": f"{platform.system()} {platform.release()}",
        "load generator": f"{wrk_version.strip()}, 1 thread",
    }


def mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(
    command: str,
    runs: list[Run],
    rss: dict[str, float],
    load: str,
    quiet: float,
    args: argparse.Namespace,
) -> tuple[str, bool]:
    cfg = Config()
    val = {r.clients: r for r in runs if r.name == "validate"}
    iss = {r.clients: r for r in runs if r.name == "issue"}
    steady = max(CLIENTS) / iss[max(CLIENTS)].rps if iss[max(CLIENTS)].rps else float("inf")
    rss_ok = all(v < RSS_TARGET_MIB for k, v in rss.items() if k != "peak (VmHWM)")
    p50_ok = val[1].p50_ms < P50_TARGET_MS
    rps_ok = all(val[c].rps > RPS_TARGET for c in (8, 32))
    clean = all(r.bad_status == 0 and r.socket_errors == 0 for r in runs)
    rows = [
        "| test | clients | requests | req/s | p50 ms | p99 ms | non-2xx | socket errors "
        "| CPU: nube | wrk | others |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows += [
        f"| {r.name} | {r.clients} | {r.requests} | {r.rps:,.1f} | {r.p50_ms:.2f} | "
        f"{r.p99_ms:.2f} | {r.bad_status} | {r.socket_errors} "
        f"| {r.server_cpu:.2f} | {r.wrk_cpu:.2f} | {r.other_cpu:.2f} |"
        for r in runs
    ]
    rss_rows = ["| nube serve RSS | MiB |", "| --- | ---: |"]
    rss_rows += [f"| {k} | {v:.1f} |" for k, v in rss.items()]
    text = f"""# Benchmarks

## Identity tokens

Produced by `{command}` on {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}.

{chr(10).join(f"- {k}: {v}" for k, v in machine().items())}
- before the run: {load}

The script starts its own `nube serve` (fresh data dir, loopback, default settings, log level
info with logs to a file) and drives it with `wrk -t1 -cN --latency`. *validate* is
`GET /identity/v3/auth/tokens` with `X-Auth-Token` and `X-Subject-Token` (the admin's own
project-scoped token, response with catalog) for {args.duration} s per level; *issue* is
`POST /identity/v3/auth/tokens` with the admin's password, project-scoped, for
{args.issue_duration} s per level. The CPU columns are cores used during each run (CPU time over
wall time, 1.00 = one core busy) by nube serve, by wrk, and by every other process on the machine;
a busy *others* means a neighbour disturbed that row (a level is retried, up to 3 times, when
others used more than {NOISY} cores; the least disturbed try is shown).

{chr(10).join(rows)}

At {max(CLIENTS)} issuing clients the steady-state latency is clients / throughput ≈ {steady:.1f} s
({"longer" if steady > args.issue_duration else "shorter"} than the {args.issue_duration} s run).
wrk drops the requests still in flight when a run ends, so the issue p50/p99 count only the
requests that got through; at that level they understate a sustained queue.

RSS from `/proc/<pid>/status`, each after {args.idle} s idle. After the load the server first
needs {quiet:.0f} s to go quiet (CPU under 2% for 1 s): it still hashes the passwords of the issue
requests that wrk abandoned at the end of its run.

{chr(10).join(rss_rows)}

### Targets

| target | result |
| --- | --- |
| idle RSS < {RSS_TARGET_MIB:.0f} MiB (after start-up and after the load) | {mark(rss_ok)} |
| validation p50 < {P50_TARGET_MS:.0f} ms (1 client) | {mark(p50_ok)} ({val[1].p50_ms:.2f} ms) |
| validation > {RPS_TARGET:,.0f} req/s (8 and 32 clients) | {mark(rps_ok)} ({val[8].rps:,.0f} / {val[32].rps:,.0f} req/s) |
| every response 2xx, no socket errors | {mark(clean)} |

### Why issue is slow

{why_slow(cfg, iss[1].p50_ms, rss["peak (VmHWM)"])}
"""
    return text, rss_ok and p50_ok and rps_ok and clean


def why_slow(cfg: Config, hash_ms: float, peak_mib: float) -> str:
    mib = cfg.password_memory_kib // 1024
    return " ".join(
        [
            "Issuing a token with the password method verifies the password against its argon2id",
            f"hash: time_cost={cfg.password_time_cost}, memory={cfg.password_memory_kib} KiB",
            f"({mib} MiB), parallelism={cfg.password_parallelism}, RFC 9106's second recommended",
            "option (settings `password_time_cost`, `password_memory_kib`, `password_parallelism`;",
            "env `NUBE_PASSWORD_TIME_COST` etc.). That is slow and memory-hard on purpose, so that",
            "a stolen database cannot be brute-forced cheaply: one verification took about",
            f"{hash_ms:.0f} ms here (issue p50 at 1 client, nearly all of it hashing) and needs",
            f"{mib} MiB. At most 2 hashes run at once, off the event loop, which bounds that memory",
            f"to {2 * mib} MiB (hence the peak RSS of {peak_mib:.0f} MiB above, while idle RSS",
            "falls back) and keeps validation served meanwhile. With parallelism",
            f"{cfg.password_parallelism} one hash can keep {cfg.password_parallelism} cores busy",
            f"(this machine has {len(os.sched_getaffinity(0))}), so issue throughput is capped at a",
            "few per second by design, and extra clients queue,",
            "which is why issue latency grows with concurrency. Clients issue a token once and",
            f"reuse it until it expires ({cfg.token_expiration} s by default); validating it, the",
            "hot path, costs no hash.",
        ]
    )


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: stop the server, remove the temp dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per validation level")
    parser.add_argument("--issue-duration", type=int, default=8, help="seconds per issue level")
    parser.add_argument(
        "--machine-wait", type=int, default=300, help="seconds to wait for other load to stop"
    )
    parser.add_argument("--idle", type=int, default=5, help="seconds idle before reading RSS")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    binary = ensure_wrk()
    others = wait_machine_quiet(args.machine_wait)
    load = f"other processes used {others:.2f} cores; load average {os.getloadavg()[0]:.2f}"
    exe = Path(sys.executable)
    shown = exe.relative_to(Path.cwd()) if exe.is_relative_to(Path.cwd()) else exe
    command = shlex.join([str(shown), *sys.argv])
    tmp = Path(tempfile.mkdtemp(prefix="nube-bench-"))
    proc: subprocess.Popen[bytes] | None = None
    log = tmp / "serve.log"
    try:
        port, s3_port = free_ports(2)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUBE_")}
        env["NUBE_ADMIN_PASSWORD"] = PASSWORD
        nube = Path(sys.prefix) / "bin" / "nube"
        serve = [str(nube), "serve", "--data-dir", str(tmp / "data"), "--bind", HOST]
        # No default networks: nothing of this run stays in the kernel.
        serve += ["--public-cidr", ""]
        serve += ["--port", str(port), "--s3-port", str(s3_port)]
        with log.open("wb") as sink:
            proc = subprocess.Popen(serve, env=env, stdout=sink, stderr=subprocess.STDOUT)
        base = f"http://{HOST}:{port}"
        wait_ready(proc, base)
        time.sleep(args.idle)
        rss = {"after start-up": rss_kib(proc.pid) / 1024}
        url = base + "/identity/v3/auth/tokens"
        status, token = http(url, "POST", json.dumps(AUTH_BODY).encode())
        assert status == 201 and token, (status, token)
        headers = {"X-Auth-Token": token, "X-Subject-Token": token}
        validate = lua_file(tmp / "validate.lua", "GET", headers)
        issue = lua_file(
            tmp / "issue.lua",
            "POST",
            {"Content-Type": "application/json"},
            json.dumps(AUTH_BODY),
        )
        wrk(binary, validate, url, "warm-up", 8, 2, proc.pid)
        plan = [("validate", validate, c, args.duration) for c in CLIENTS]
        plan += [("issue", issue, c, args.issue_duration) for c in CLIENTS]
        runs: list[Run] = []
        for name, lua, clients, seconds in plan:
            tries: list[Run] = []
            while len(tries) < 3 and (not tries or tries[-1].other_cpu > NOISY):
                wait_machine_quiet(args.machine_wait)
                wait_quiet(proc.pid)  # abandoned issue requests from the previous try
                tries.append(wrk(binary, lua, url, name, clients, seconds, proc.pid))
            runs.append(min(tries, key=lambda r: r.other_cpu))
        quiet = wait_quiet(proc.pid)
        time.sleep(args.idle)
        rss["after the load"] = rss_kib(proc.pid) / 1024
        rss["peak (VmHWM)"] = rss_kib(proc.pid, "VmHWM") / 1024
        text, passed = report(command, runs, rss, load, quiet, args)
        print(text)
        section = text.removeprefix("# Benchmarks").lstrip("\n")
        write_section("identity_tokens", section, args.output)
        print(f"written to {args.output}", file=sys.stderr)
        return 0 if passed else 1
    except BaseException:
        if log.exists():
            sys.stderr.write("--- nube serve log (tail) ---\n")
            sys.stderr.write("\n".join(log.read_text(errors="replace").splitlines()[-30:]) + "\n")
        raise
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # by PID: Popen signals only its own child
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""The kernel side of benchmarks/network.py: the script's own namespaces, bridge and veths (every name
starts with `nbb`, which no cloud's `nb` + 4 hex prefix can match), busybox transfers between them, SSH
into guests from the outside namespace, and a sweep of whatever the benchmark's Nube left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

PORT = 5001
OUTSIDE, OUTSIDE_VETH = "nbbx-out", "nbbxo"
BASE_BRIDGE, BASE = "nbbbr0", (("nbb-a", "nbbva", "10.254.0.1"), ("nbb-b", "nbbvb", "10.254.0.2"))
POLL = """
import socket, sys, time
address, once = sys.argv[1], len(sys.argv) > 2
def answers():
    try:
        with socket.create_connection((address, 80), timeout=3 if once else 0.5) as s:
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            return s.recv(64).startswith(b"HTTP/")
    except OSError:
        return False
if once:
    sys.exit(0 if answers() else 1)
print("ready", flush=True)
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    if answers():
        print(time.monotonic(), flush=True)
        sys.exit(0)
    time.sleep(0.05)
print("timeout", flush=True)
"""


def sh(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()[-300:]}"
        )
    return result


def in_ns(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


class Poller:
    """A process in the outside namespace connecting to port 80 every 50 ms; it reports the
    CLOCK_MONOTONIC time (system-wide, like ours) of the first HTTP answer."""

    def __init__(self, address: str) -> None:
        self.proc = subprocess.Popen(in_ns(OUTSIDE, "/usr/bin/python3", "-c", POLL, address),
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the HTTP poller did not start")

    def answered_at(self) -> float:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        self.proc.wait(timeout=30)
        if not line or line == "timeout":
            raise TimeoutError("no HTTP answer through the floating IP in 300 s")
        return float(line)


class Host:
    def __init__(self, workdir: Path) -> None:
        self.workdir, self.cloud_prefix = workdir, "nb-unset"
        self.key = workdir / "id_ed25519"
        self.procs: list[subprocess.Popen[str]] = []

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise TimeoutError(f"waited {timeout} s for {what}")

    # -- the cloud's names ----------------------------------------------------------------------

    def nube_names(self) -> set[str]:
        links = sh("ip", "-o", "link", "show").stdout.splitlines()
        names = {line.split(":")[1].strip().split("@")[0] for line in links}
        names |= {
            line.split()[0]
            for line in sh("ip", "netns", "list").stdout.splitlines()
            if line.strip()
        }
        return {n for n in names if n.startswith(self.cloud_prefix)}

    def bridge_of(self, network_id: str) -> str:
        return f"{self.cloud_prefix}b{network_id.replace('-', '')[:8]}"

    # -- the script's own namespaces ------------------------------------------------------------

    def outside_up(self, bridge: str, address: str, cidr: str) -> None:
        """The outside world: a namespace on the external network's bridge at its gateway address. It
        re-asks ARP every 100 ms so a floating IP's first packets wait at most that long for an answer."""
        sh("ip", "netns", "add", OUTSIDE)
        sh(
            "ip",
            "link",
            "add",
            OUTSIDE_VETH,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            OUTSIDE,
        )
        sh("ip", "link", "set", OUTSIDE_VETH, "master", bridge, "up")
        sh("ip", "-n", OUTSIDE, "addr", "add", f"{address}/{cidr.split('/')[1]}", "dev", "eth0")
        sh("ip", "-n", OUTSIDE, "link", "set", "eth0", "up")
        sh("ip", "-n", OUTSIDE, "link", "set", "lo", "up")
        sh(*in_ns(OUTSIDE, "sysctl", "-qw", "net.ipv4.neigh.eth0.retrans_time_ms=100"))

    def baseline_up(self) -> None:
        sh("ip", "link", "add", BASE_BRIDGE, "type", "bridge")
        sh("ip", "link", "set", BASE_BRIDGE, "up")
        for ns, veth, address in BASE:
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", BASE_BRIDGE, "up")
            sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def down(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for ns in (OUTSIDE, *(b[0] for b in BASE)):
            sh("ip", "netns", "delete", ns, check=False)
        for link in (OUTSIDE_VETH, BASE_BRIDGE, *(b[1] for b in BASE)):
            sh("ip", "link", "delete", link, check=False)

    # -- probes and transfers -------------------------------------------------------------------

    def forget(self, address: str) -> None:
        sh("ip", "-n", OUTSIDE, "neigh", "flush", "to", address, check=False)

    def http_poller(self, address: str) -> Poller:
        poller = Poller(address)
        self.procs.append(poller.proc)
        return poller

    def http_ok(self, address: str) -> bool:
        return (
            sh(
                *in_ns(OUTSIDE, "/usr/bin/python3", "-c", POLL, address, "once"), check=False
            ).returncode
            == 0
        )

    @contextmanager
    def listener(self, ns: str) -> Iterator[None]:
        """busybox `nc -l` into /dev/null; its stdin is a FIFO opened read-write, which never ends
        (busybox nc quits on EOF from either side, so /dev/null as stdin would cut the sender)."""
        fifo = self.workdir / f"hold-{ns}"
        if not fifo.exists():
            os.mkfifo(fifo)
        hold = os.open(fifo, os.O_RDWR)
        try:
            proc = subprocess.Popen(in_ns(ns, "busybox", "nc", "-l", "-p", str(PORT)), stdin=hold,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
            self.procs.append(proc)
            self.wait(
                lambda: f":{PORT} " in sh(*in_ns(ns, "ss", "-ltnH")).stdout,
                f"nc to listen in {ns}",
                30,
            )
            yield
            proc.wait(timeout=120)
        finally:
            os.close(hold)

    def send(self, ns: str, target: str, mib: int) -> float:
        """Mbit/s of `busybox dd | busybox nc` from a namespace, timed here around the pipe."""
        pipe = f"busybox dd if=/dev/zero bs=64k count={mib * 16} 2>/dev/null | busybox nc {target} {PORT}"
        start = time.perf_counter()
        sh(*in_ns(ns, "busybox", "sh", "-c", pipe))
        return mib * 8 * 1.048576 / (time.perf_counter() - start)

    def baseline_send(self, mib: int) -> float:
        with self.listener(BASE[1][0]):
            return self.send(BASE[0][0], BASE[1][2], mib)

    def outside_send(self, address: str, mib: int) -> float:
        return self.send(OUTSIDE, address, mib)

    def outside_listener(self) -> AbstractContextManager[None]:
        return self.listener(OUTSIDE)

    # -- SSH into guests ------------------------------------------------------------------------

    def public_key(self) -> str:
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key))
        return self.key.with_suffix(".pub").read_text().strip()

    def ssh(self, address: str, script: str, timeout: float = 600) -> str:
        return sh(*in_ns(OUTSIDE, "ssh", "-i", str(self.key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
                         f"root@{address}", script), timeout=timeout).stdout  # fmt: skip

    def ssh_ok(self, address: str) -> bool:
        try:
            return "ok" in self.ssh(address, "echo ok", timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    # -- after the cloud stopped ----------------------------------------------------------------

    def sweep(self, server_ids: list[str], data_dir: Path) -> None:
        """Remove what the stopped Nube still holds, and say so: after a clean run there is nothing."""
        left: list[str] = []
        domains = sh(
            "virsh", "-c", "qemu:///system", "list", "--all", "--name", check=False
        ).stdout.split()
        for name in {f"nube-{i}" for i in server_ids} & set(domains):
            sh("virsh", "-c", "qemu:///system", "destroy", name, check=False)
            sh("virsh", "-c", "qemu:///system", "undefine", name, check=False)
            left.append(f"domain {name}")
        for proc in Path("/proc").iterdir():
            try:
                cmdline = (
                    (proc / "cmdline").read_bytes().decode(errors="replace")
                    if proc.name.isdigit()
                    else ""
                )
            except OSError:
                continue
            if cmdline.startswith("dnsmasq") and str(data_dir) in cmdline:
                os.kill(int(proc.name), signal.SIGTERM)
                left.append(f"dnsmasq {proc.name}")
        for name in sorted(self.nube_names()) if self.cloud_prefix != "nb-unset" else []:
            if sh("ip", "netns", "delete", name, check=False).returncode != 0:
                sh("ip", "link", "delete", name, check=False)
            left.append(name)
        for line in sh("nft", "list", "tables", check=False).stdout.splitlines():
            _, family, table = line.split()
            if table.startswith(self.cloud_prefix + "_"):
                sh("nft", "delete", "table", family, table, check=False)
                left.append(f"nft {family} {table}")
        if left:
            print(
                f"swept what the benchmark's Nube left behind: {', '.join(left)}", file=sys.stderr
            )

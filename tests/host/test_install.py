"""install.sh for real, as root: into temp dirs on free ports, then again (a no-op), then uninstalled.

One install per module (pip install takes ~20 s); the fixtures chain install -> second run ->
uninstall -> purge, so every test sees the state its name describes, whichever tests are selected.
install.sh runs from a snapshot of the checkout, so edits made meanwhile (it takes a while) do not
look like a code change to the second run. The service runs as a daemon with a pidfile even where systemd is PID 1, so the test never writes a
unit on a developer's machine; the systemd path of install.sh is not covered here.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.api.harness import unused_cidr

if os.geteuid() != 0:
    pytest.skip(
        "tests/host need root (install.sh installs packages and services): "
        "run them with sudo ./tests/run.sh",
        allow_module_level=True,
    )

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.prefix) / "bin"
ADMIN_PASSWORD = "install-test-" + secrets.token_hex(4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """Running and not a zombie (PID 1 on CI machines reaps orphans lazily)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@dataclass
class Install:
    root: Path
    port: int = field(default_factory=free_port)
    s3_port: int = field(default_factory=free_port)
    pids: set[int] = field(default_factory=set)
    public_cidr: str = field(default_factory=unused_cidr)

    @property
    def source(self) -> Path:
        return self.root / "src"

    @property
    def prefix(self) -> Path:
        return self.root / "prefix"

    @property
    def bindir(self) -> Path:
        return self.root / "bin"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NUBE_", "OS_"))}
        return env | {
            "NUBE_PREFIX": str(self.prefix),
            "NUBE_BINDIR": str(self.bindir),
            "NUBE_DATA_DIR": str(self.data_dir),
            "NUBE_BIND": "127.0.0.1",
            "NUBE_PORT": str(self.port),
            "NUBE_S3_PORT": str(self.s3_port),
            "NUBE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "NUBE_SERVICE_MANAGER": "daemon",
            "NUBE_SERVICE_NAME": f"nube-test-{self.port}",
            "NUBE_PUBLIC_CIDR": self.public_cidr,
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.source / "install.sh"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        pid = self.pid()
        if pid is not None:
            self.pids.add(pid)
        return result

    def pid(self) -> int | None:
        try:
            return int((self.data_dir / "nube.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill_leftovers(self) -> None:
        for pid in self.pids:
            if alive(pid) and str(self.prefix) in cmdline(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def install(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Install, subprocess.CompletedProcess[str]]]:
    inst = Install(tmp_path_factory.mktemp("install"))
    shutil.copytree(
        REPO,
        inst.source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    try:
        yield inst, inst.run()
    finally:
        inst.run("--uninstall", "--purge")
        inst.kill_leftovers()
        shutil.rmtree(inst.root, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(install: tuple[Install, subprocess.CompletedProcess[str]]) -> Install:
    inst, result = install
    assert result.returncode == 0, output(result)
    return inst


@pytest.fixture(scope="module")
def second_run(
    installed: Install,
) -> tuple[subprocess.CompletedProcess[str], int | None, int | None]:
    before = installed.pid()
    result = installed.run()
    return result, before, installed.pid()


@pytest.fixture(scope="module")
def uninstalled(
    installed: Install, second_run: object
) -> tuple[subprocess.CompletedProcess[str], int | None]:
    pid = installed.pid()
    return installed.run("--uninstall"), pid


@pytest.fixture(scope="module")
def purged(installed: Install, uninstalled: object) -> subprocess.CompletedProcess[str]:
    return installed.run("--uninstall", "--purge")


def test_install_exits_zero_after_nine_steps(
    install: tuple[Install, subprocess.CompletedProcess[str]],
) -> None:
    _, result = install
    assert result.returncode == 0, output(result)
    assert "[6/9] libvirt daemons" in result.stdout
    assert "[7/9] service" in result.stdout
    assert "[9/9] import nube-tiny as a public image" in result.stdout


def test_installed_api_answers_300_on_identity(installed: Install) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", installed.port, timeout=10)
    try:
        conn.request("GET", "/identity")
        assert conn.getresponse().status == 300
    finally:
        conn.close()


def test_installed_daemon_runs_from_the_venv(installed: Install) -> None:
    pid = installed.pid()
    assert pid is not None and alive(pid)
    assert f"{installed.prefix}/venv/bin/nube serve --data-dir {installed.data_dir} " in cmdline(
        pid
    )
    assert os.readlink(installed.bindir / "nube") == str(installed.prefix / "venv/bin/nube")


def test_install_writes_private_credentials(installed: Install) -> None:
    for name in ("admin-openrc.sh", "clouds.yaml"):
        mode = stat.S_IMODE((installed.data_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {mode:o}"
    assert stat.S_IMODE(installed.data_dir.stat().st_mode) == 0o700


def test_openstack_token_issue_works_with_the_admin_openrc(installed: Install) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUBE_", "OS_"))}
    result = subprocess.run(
        [
            "bash",
            "-c",
            'source "$1" && exec "$2" token issue -f json',
            "-",
            str(installed.data_dir / "admin-openrc.sh"),
            str(BIN / "openstack"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, output(result)
    assert json.loads(result.stdout)["id"]


def test_fresh_install_lists_nube_tiny_among_the_images(installed: Install) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUBE_", "OS_"))}
    result = subprocess.run(
        [
            "bash",
            "-c",
            'source "$1" && exec "$2" image list -f json',
            "-",
            str(installed.data_dir / "admin-openrc.sh"),
            str(BIN / "openstack"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, output(result)
    images = {i["Name"]: i["Status"] for i in json.loads(result.stdout)}
    assert images["nube-tiny"] == "active"
    assert images["nube-tiny-kernel"] == images["nube-tiny-ramdisk"] == "active"


def test_second_run_reports_nothing_changed(
    second_run: tuple[subprocess.CompletedProcess[str], int | None, int | None],
) -> None:
    result, _, _ = second_run
    assert result.returncode == 0, output(result)
    assert "Nothing changed" in result.stdout, output(result)
    steps = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(steps) == 9
    assert all(" ... already " in line for line in steps), output(result)


def test_second_run_keeps_the_same_daemon(
    second_run: tuple[subprocess.CompletedProcess[str], int | None, int | None],
) -> None:
    _, before, after = second_run
    assert before is not None and before == after
    assert alive(before)


def links_of(data_dir: Path) -> dict[str, list[str]]:
    """This installation's links (its cloud-id prefix) and their IPv4 addresses."""
    prefix = "nb" + (data_dir / "cloud-id").read_text().strip()[:4]
    shown = json.loads(subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True,
                                      check=True).stdout)  # fmt: skip
    return {
        link["ifname"]: [a["local"] for a in link.get("addr_info", []) if a.get("family") == "inet"]
        for link in shown
        if link["ifname"].startswith(prefix)
    }


def test_the_first_start_gives_the_host_the_public_gateway(installed: Install) -> None:
    host = installed.public_cidr.rsplit(".", 1)[0] + ".1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and [host] not in links_of(installed.data_dir).values():
        time.sleep(0.5)
    assert [host] in links_of(installed.data_dir).values()


def test_uninstall_stops_the_daemon(
    uninstalled: tuple[subprocess.CompletedProcess[str], int | None],
) -> None:
    result, pid = uninstalled
    assert result.returncode == 0, output(result)
    assert pid is not None and not alive(pid)


def test_uninstall_removes_venv_and_command_but_keeps_data(
    installed: Install, uninstalled: tuple[subprocess.CompletedProcess[str], int | None]
) -> None:
    result, _ = uninstalled
    assert result.returncode == 0, output(result)
    assert not (installed.prefix / "venv").exists()
    assert not (installed.bindir / "nube").is_symlink()
    assert (installed.data_dir / "nube.db").is_file()
    assert (installed.data_dir / "admin-openrc.sh").is_file()
    assert links_of(installed.data_dir) == {}  # bridges and namespaces go with the service


def test_uninstall_purge_removes_the_data_dir(
    installed: Install, purged: subprocess.CompletedProcess[str]
) -> None:
    assert purged.returncode == 0, output(purged)
    assert not installed.data_dir.exists()

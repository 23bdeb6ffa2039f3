"""`nube image import-default`: upload the nube-tiny guest (built by images/build-nube-tiny.sh) as
public images through the image API, as any client would: kernel (aki), ramdisk (ari), and the disk
(qcow2) carrying `kernel_id`, `ramdisk_id` and `os_command_line` for direct kernel boot."""

from __future__ import annotations

import json
import os
import shlex
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

DEFAULT_CACHE = Path(os.environ.get("NUBE_IMAGE_CACHE", "/var/cache/nube/images"))
NAME = "nube-tiny"


class ImportFailed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Credentials:
    auth_url: str
    username: str
    password: str
    project: str
    user_domain: str = "Default"
    project_domain: str = "Default"

    @classmethod
    def from_openrc(cls, path: Path) -> Credentials:
        values: dict[str, str] = {}
        for line in path.read_text().splitlines():
            words = shlex.split(line, comments=True)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                key, _, value = words[1].partition("=")
                values[key] = value
        try:
            return cls(
                values["OS_AUTH_URL"],
                values["OS_USERNAME"],
                values["OS_PASSWORD"],
                values["OS_PROJECT_NAME"],
                values.get("OS_USER_DOMAIN_NAME", "Default"),
                values.get("OS_PROJECT_DOMAIN_NAME", "Default"),
            )
        except KeyError as exc:
            raise ImportFailed(f"{path} does not set {exc.args[0]}") from None


class Progress:
    """A file wrapper that prints upload progress every 10 %."""

    def __init__(self, handle: IO[bytes], size: int, label: str) -> None:
        self.handle, self.size, self.label = handle, size, label
        self.sent = 0
        self.shown = -1

    def read(self, amount: int = -1) -> bytes:
        data = self.handle.read(amount)
        self.sent += len(data)
        step = self.sent * 10 // max(self.size, 1)
        if step != self.shown:
            self.shown = step
            print(f"    {self.label}: {step * 10:3d}% of {self.size / 1048576:.1f} MiB", flush=True)
        return data


class Client:
    def __init__(self, creds: Credentials) -> None:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": creds.username,
                            "domain": {"name": creds.user_domain},
                            "password": creds.password,
                        }
                    },
                },
                "scope": {
                    "project": {"name": creds.project, "domain": {"name": creds.project_domain}}
                },
            }
        }
        request = urllib.request.Request(
            creds.auth_url.rstrip("/") + "/v3/auth/tokens",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with self._open(request) as response:
            self.token = response.headers["X-Subject-Token"]
            catalog = json.load(response)["token"]["catalog"]
        urls = [
            e["url"]
            for s in catalog
            if s["type"] == "image"
            for e in s["endpoints"]
            if e["interface"] == "public"
        ]
        if not urls:
            raise ImportFailed("the catalog has no image service")
        self.base = urls[0].rstrip("/") + "/v2"

    @staticmethod
    def _open(request: urllib.request.Request) -> Any:
        try:
            return urllib.request.urlopen(request, timeout=600)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip().splitlines()[-1:]
            raise ImportFailed(
                f"{request.get_method()} {request.full_url}: {exc.code} {' '.join(detail)}"
            ) from None
        except urllib.error.URLError as exc:
            raise ImportFailed(f"cannot reach {request.full_url}: {exc.reason}") from None

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"X-Auth-Token": self.token, "Content-Type": content_type},
        )
        with self._open(request) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def upload(self, image_id: str, path: Path, label: str) -> None:
        size = path.stat().st_size
        with path.open("rb") as handle:
            request = urllib.request.Request(
                f"{self.base}/images/{image_id}/file",
                data=Progress(handle, size, label),  # type: ignore[arg-type]
                method="PUT",
                headers={
                    "X-Auth-Token": self.token,
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(size),
                },
            )
            self._open(request).close()


def import_default(creds: Credentials, build_dir: Path, check_only: bool = False) -> str | None:
    """Upload the build unless an image of this build is already there; returns the disk image id
    (with `check_only`, uploads nothing and returns None when the build is not imported)."""
    manifest_path = build_dir / "manifest.json"
    if not manifest_path.exists():
        raise ImportFailed(
            f"no nube-tiny build in {build_dir}: run images/build-nube-tiny.sh first"
        )
    manifest = json.loads(manifest_path.read_text())
    build = manifest["inputs_hash"]
    client = Client(creds)
    existing = client.call("GET", f"/images?name={NAME}")["images"]
    for image in existing:
        if image.get("nube_build") == build and image["status"] == "active":
            print(f"nube-tiny build {build} is already imported as {image['id']}")
            return str(image["id"])
    if check_only:
        print(f"nube-tiny build {build} is not imported yet")
        return None
    for image in existing:  # an older build: keep it, under a name that says which build it was
        old = image.get("nube_build", "old")
        client.call("PATCH", f"/images/{image['id']}", [{"op": "replace", "path": "/name", "value": f"{NAME}-{old}"}],
                    "application/openstack-images-v2.1-json-patch")  # fmt: skip
    common = {"visibility": "public", "nube_build": build, "os_distro": "nube-tiny"}
    kernel = client.call(
        "POST",
        "/images",
        {"name": f"{NAME}-kernel", "disk_format": "aki", "container_format": "aki", **common},
    )
    # The bzImage, not the faster PVH vmlinux: only the real-mode setup tells the kernel about the
    # VGA text screen, so only then does console=tty0 show the boot in the VNC console.
    client.upload(kernel["id"], build_dir / "vmlinuz", f"{NAME}-kernel")
    ramdisk = client.call(
        "POST",
        "/images",
        {"name": f"{NAME}-ramdisk", "disk_format": "ari", "container_format": "ari", **common},
    )
    client.upload(ramdisk["id"], build_dir / "initrd.img", f"{NAME}-ramdisk")
    disk = client.call("POST", "/images", {
        "name": NAME, "disk_format": "qcow2", "container_format": "bare", "min_ram": 64,
        "kernel_id": kernel["id"], "ramdisk_id": ramdisk["id"],
        "os_command_line": manifest.get("kernel_cmdline", "console=ttyS0"), **common,
    })  # fmt: skip
    client.upload(disk["id"], build_dir / "disk.qcow2", NAME)
    print(
        f"imported nube-tiny build {build}: {NAME} {disk['id']} (kernel {kernel['id']}, ramdisk {ramdisk['id']})"
    )
    return str(disk["id"])


def main(data_dir: Path, build_dir: Path | None, check_only: bool = False) -> int:
    openrc = data_dir / "admin-openrc.sh"
    try:
        if os.environ.get("OS_AUTH_URL") and os.environ.get("OS_PASSWORD"):
            creds = Credentials(
                os.environ["OS_AUTH_URL"], os.environ["OS_USERNAME"], os.environ["OS_PASSWORD"],
                os.environ["OS_PROJECT_NAME"], os.environ.get("OS_USER_DOMAIN_NAME", "Default"),
                os.environ.get("OS_PROJECT_DOMAIN_NAME", "Default"),
            )  # fmt: skip
        elif openrc.exists():
            creds = Credentials.from_openrc(openrc)
        else:
            raise ImportFailed(f"no OS_* credentials in the environment and no {openrc}")
        found = import_default(creds, (build_dir or DEFAULT_CACHE / NAME).resolve(), check_only)
    except ImportFailed as exc:
        print(f"nube: image import-default failed: {exc}", file=sys.stderr)
        return 1
    return 0 if found else 1

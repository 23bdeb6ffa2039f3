"""Nube's settings: one frozen value, read from `<data-dir>/nube.toml`, then NUBE_* env vars, then CLI flags."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path("/var/lib/nube")


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = DEFAULT_DATA_DIR
    bind: str = "0.0.0.0"
    port: int = 8080
    s3_port: int = 9000
    # Base URL the catalog advertises; empty means "the scheme and Host the client used".
    public_url: str = ""
    region: str = "RegionOne"
    token_expiration: int = 3600
    # Argon2id cost; the defaults are RFC 9106's second recommended option (t=3, 64 MiB, p=4).
    password_time_cost: int = 3
    password_memory_kib: int = 65536
    password_parallelism: int = 4
    log_level: str = "info"
    libvirt_uri: str = "qemu:///system"
    # The external network `public` made at first start; the host holds its first address on the
    # network's bridge (as DevStack's br-ex), so floating IPs answer the host. Empty: no default networks.
    public_cidr: str = "172.24.4.0/24"
    # The `private` network of the admin project, routed to `public` by `router1`.
    private_cidr: str = "10.0.0.0/24"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "nube.db"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"


_INT_FIELDS = {f.name for f in dataclasses.fields(Config) if f.type == "int"}


def _coerce(name: str, value: Any) -> Any:
    if name == "data_dir":
        return Path(value)
    if name in _INT_FIELDS:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"setting {name} must be an integer, got {value!r}") from None
    return value


def load_config(
    data_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Build the config: defaults < nube.toml in the data dir < NUBE_<NAME> env vars < overrides."""
    env = os.environ if environ is None else environ
    names = {f.name for f in dataclasses.fields(Config)} - {"extra"}
    values: dict[str, Any] = {}
    root = Path(data_dir or env.get("NUBE_DATA_DIR") or DEFAULT_DATA_DIR)
    toml_path = root / "nube.toml"
    extra: dict[str, Any] = {}
    if toml_path.exists():
        with toml_path.open("rb") as fh:
            for key, value in tomllib.load(fh).items():
                if key in names:
                    values[key] = value
                else:
                    extra[key] = value
    for name in names:
        env_value = env.get(f"NUBE_{name.upper()}")
        if env_value is not None:
            values[name] = env_value
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    values["data_dir"] = root
    return Config(**{k: _coerce(k, v) for k, v in values.items()}, extra=extra)

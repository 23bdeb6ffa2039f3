"""Small helpers every network module shares: timestamps, Neutron-named errors, field parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from appliance.errors import Invalid, NubeError

__all__ = ["_bool", "_text", "err", "random_mac", "stamp"]


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def err(cls: type[NubeError], kind: str, message: str) -> NubeError:
    """A domain error carrying Neutron's exception name (the `type` of a NeutronError body)."""
    exc = cls(message)
    exc.kind = kind  # type: ignore[attr-defined]
    return exc


def _text(spec: dict[str, Any], key: str, default: str = "", limit: int = 255) -> str:
    value = spec.get(key, default)
    if value is None:
        value = default
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(
            f"Invalid input for {key}: a string of at most {limit} characters is required."
        )
    return value


def _bool(spec: dict[str, Any], key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise Invalid(f"Invalid input for {key}: a boolean is required.")
    return value


def random_mac() -> str:
    return "fa:16:3e:" + ":".join(f"{random.randint(0, 255):02x}" for _ in range(3))

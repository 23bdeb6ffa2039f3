"""EC2 credentials made with the real `openstack` CLI, and S3 clients pointed at a real nube serve."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.api.harness import Nube, openstack


@dataclass(frozen=True)
class Keys:
    access: str
    secret: str
    project_id: str


def admin_keys(nube: Nube) -> Keys:
    cred = openstack(nube.env(), "ec2", "credentials", "create", "-f", "json")
    return Keys(cred["access"], cred["secret"], cred["project_id"])


def other_project_keys(nube: Nube) -> Keys:
    """A member of a fresh project, with its own EC2 credentials."""
    env = nube.env()
    name = f"s3-{uuid.uuid4().hex[:8]}"
    project = openstack(env, "project", "create", name, "-f", "json")
    openstack(env, "user", "create", name, "--password", "pw-" + name, "-f", "json")
    openstack(env, "role", "add", "--project", name, "--user", name, "member")
    cred = openstack(
        nube.env(user=name, password="pw-" + name, project=name),
        "ec2",
        "credentials",
        "create",
        "-f",
        "json",
    )
    assert cred["project_id"] == project["id"]
    return Keys(cred["access"], cred["secret"], project["id"])


def client(nube: Nube, keys: Keys, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{nube.s3_port}",
        aws_access_key_id=keys.access,
        aws_secret_access_key=keys.secret,
        region_name=config.pop("region_name", "us-east-1"),
        config=Config(**config) if config else None,
    )


def bucket_name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    """The S3 error code of a refused call."""
    return str(exc.value.response["Error"]["Code"])


def keys_in(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]

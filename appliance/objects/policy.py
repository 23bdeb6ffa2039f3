"""Who besides the owning project may use a bucket: canned ACLs and the bucket policy subset."""

from __future__ import annotations

import json
import re
from typing import Any

from appliance.objects.errors import S3Error
from appliance.objects.records import Bucket

CANNED_ACLS = ("private", "public-read", "public-read-write", "authenticated-read",
               "bucket-owner-read", "bucket-owner-full-control")  # fmt: skip


def public_allows(bucket: Bucket, action: str, key: str) -> bool:
    if bucket.acl in ("public-read", "public-read-write") and action in (
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
    ):
        return True
    if bucket.acl == "public-read-write" and action in ("s3:PutObject", "s3:DeleteObject"):
        return True
    if bucket.policy:
        return policy_allows(json.loads(bucket.policy), bucket.name, action, key)
    return False


def policy_allows(policy: dict[str, Any], bucket: str, action: str, key: str) -> bool:
    """The subset of bucket policies we honour: Allow statements to everyone (Principal "*")."""
    resource = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key else "")
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for st in statements:
        principal = st.get("Principal")
        if principal not in ("*", {"AWS": "*"}, {"AWS": ["*"]}):
            continue
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = st.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if not any(glob(a, action) for a in actions):
            continue
        if not any(glob(r, resource) for r in resources):
            continue
        if st.get("Effect") == "Deny":
            return False
        if st.get("Effect") == "Allow":
            allowed = True
    return allowed


def cors_rule(rules: list[dict[str, Any]], origin: str, method: str) -> dict[str, Any] | None:
    """The first of a bucket's CORS rules that allows `method` from `origin`, if any."""
    for rule in rules:
        origins = rule.get("AllowedOrigin", [])
        if any(glob(o, origin) for o in origins) and method in rule.get("AllowedMethod", []):
            return rule
    return None


def glob(pattern: str, value: str) -> bool:
    regex = "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$"
    return re.match(regex, value, re.IGNORECASE) is not None


def validate_policy(text: str) -> dict[str, Any]:
    try:
        policy = json.loads(text)
    except ValueError:
        raise S3Error("MalformedPolicy", "Policies must be valid JSON.") from None
    if not isinstance(policy, dict) or "Statement" not in policy:
        raise S3Error("MalformedPolicy", "Missing required field Statement")
    return policy

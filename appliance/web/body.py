"""Reading JSON request bodies, with a size limit answered as 413 in the API's own dialect.

(Starlette's `max_body_size` answers a plain-text 413 whenever Content-Length is too large, bypassing
the dialect's error shape, so the limit is enforced here instead.)"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from appliance.errors import Invalid, TooLarge

# Keystone's default max_request_body_size (keystone.conf [DEFAULT]); other APIs pass their own.
DEFAULT_LIMIT = 114_688


async def json_body(request: Request, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The body as a JSON object; Invalid (400) if it is empty, not JSON, or not an object;
    TooLarge (413) past `limit` bytes, read no further than that."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"Request body is larger than the limit of {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"Request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise Invalid("The request body is empty; a JSON object is required.")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Invalid(f"Malformed JSON in request body: {exc}") from None
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object.")
    return body


def member(body: dict[str, Any], key: str) -> dict[str, Any]:
    """`body[key]` as an object, or Invalid naming what is missing."""
    value = body.get(key)
    if not isinstance(value, dict):
        raise Invalid(f"Expecting to find {key} in request body.")
    return value

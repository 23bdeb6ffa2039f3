"""Reading request bodies. Size limits are Starlette's (`max_body_size` on each API app: 413)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from appliance.errors import Invalid


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object; Invalid (400) if it is empty, not JSON, or not an object."""
    raw = await request.body()
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

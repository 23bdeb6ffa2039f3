"""limit/marker pagination as Nova, Neutron, Cinder and Glance do it (openstack-api.md §1.9).

Items are sorted by the caller; the marker is the id of the last item of the previous page. A page that
is full carries a `next` link, and clients (openstacksdk `_get_next_link`) follow it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from appliance.errors import Invalid

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int | None = None
    marker: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_marker: str | None  # set when the page was full and more may follow


def page_request(query: Mapping[str, str], max_limit: int = 1000) -> PageRequest:
    limit: int | None = None
    raw = query.get("limit")
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise Invalid(f"limit must be an integer, got {raw!r}.") from None
        if limit < 0:
            raise Invalid("limit must be 0 or more.")
        limit = min(limit, max_limit)
    return PageRequest(limit=limit, marker=query.get("marker") or None)


def paginate(
    items: Sequence[T],
    page: PageRequest,
    key: Callable[[T], str] = lambda item: item["id"],  # type: ignore[index]
) -> Page[T]:
    start = 0
    if page.marker is not None:
        ids = [key(item) for item in items]
        try:
            start = ids.index(page.marker) + 1
        except ValueError:
            raise Invalid(f"marker [{page.marker}] not found") from None
    rest = list(items[start:])
    if page.limit is None or len(rest) <= page.limit:
        return Page(rest, None)
    chunk = rest[: page.limit]
    return Page(chunk, key(chunk[-1]) if chunk else None)


def next_href(
    base_url: str, query: Mapping[str, Any], page: Page[Any], limit: int | None
) -> str | None:
    """The URL of the next page: the same query with marker replaced, or None on the last page."""
    if page.next_marker is None:
        return None
    params = [(k, v) for k, v in query.items() if k not in ("marker", "limit")]
    if limit is not None:
        params.append(("limit", str(limit)))
    params.append(("marker", page.next_marker))
    return f"{base_url}?{urlencode(params)}"

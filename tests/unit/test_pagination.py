"""limit/marker pagination: reading the query, cutting a page, and the `next` link."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from appliance.errors import Invalid
from appliance.web.pagination import Page, PageRequest, next_href, page_request, paginate

ITEMS = [{"id": f"id-{n}", "name": f"item {n}"} for n in range(5)]


def ids(page: Page) -> list[str]:
    return [item["id"] for item in page.items]


# -- page_request --------------------------------------------------------------------------------


def test_query_without_limit_or_marker_asks_for_everything() -> None:
    assert page_request({}) == PageRequest(limit=None, marker=None)


def test_limit_is_read_as_an_integer() -> None:
    assert page_request({"limit": "20"}).limit == 20


def test_limit_above_the_maximum_is_lowered_to_it() -> None:
    assert page_request({"limit": "5000"}, max_limit=1000).limit == 1000


def test_limit_zero_is_accepted() -> None:
    assert page_request({"limit": "0"}).limit == 0


def test_negative_limit_is_invalid() -> None:
    with pytest.raises(Invalid):
        page_request({"limit": "-1"})


@pytest.mark.parametrize("raw", ["ten", "1.5", ""])
def test_non_integer_limit_is_invalid(raw: str) -> None:
    with pytest.raises(Invalid, match="limit must be an integer"):
        page_request({"limit": raw})


def test_marker_is_kept() -> None:
    assert page_request({"marker": "id-2"}).marker == "id-2"


def test_empty_marker_means_no_marker() -> None:
    assert page_request({"marker": ""}).marker is None


# -- paginate ------------------------------------------------------------------------------------


def test_no_limit_returns_every_item_and_no_next_marker() -> None:
    page = paginate(ITEMS, PageRequest())
    assert ids(page) == [item["id"] for item in ITEMS]
    assert page.next_marker is None


def test_limit_smaller_than_the_rest_cuts_the_page_and_marks_its_last_item() -> None:
    page = paginate(ITEMS, PageRequest(limit=2))
    assert ids(page) == ["id-0", "id-1"]
    assert page.next_marker == "id-1"


def test_limit_equal_to_the_rest_gives_no_next_marker() -> None:
    assert paginate(ITEMS, PageRequest(limit=5)).next_marker is None


def test_marker_starts_the_page_after_the_marked_item() -> None:
    assert ids(paginate(ITEMS, PageRequest(marker="id-1"))) == ["id-2", "id-3", "id-4"]


def test_marker_on_the_last_item_gives_an_empty_last_page() -> None:
    page = paginate(ITEMS, PageRequest(limit=2, marker="id-4"))
    assert page.items == []
    assert page.next_marker is None


def test_unknown_marker_is_invalid_and_names_it() -> None:
    with pytest.raises(Invalid, match=r"marker \[nope\] not found"):
        paginate(ITEMS, PageRequest(marker="nope"))


def test_limit_zero_gives_an_empty_page_without_a_next_marker() -> None:
    page = paginate(ITEMS, PageRequest(limit=0))
    assert page.items == []
    assert page.next_marker is None


def test_key_function_picks_the_marker_field() -> None:
    page = paginate(ITEMS, PageRequest(limit=1, marker="item 0"), key=lambda item: item["name"])
    assert ids(page) == ["id-1"]
    assert page.next_marker == "item 1"


def test_following_next_markers_visits_every_item_exactly_once() -> None:
    seen: list[str] = []
    marker = None
    for _ in range(10):
        page = paginate(ITEMS, PageRequest(limit=2, marker=marker))
        seen += ids(page)
        marker = page.next_marker
        if marker is None:
            break
    assert seen == [item["id"] for item in ITEMS]


# -- next_href -----------------------------------------------------------------------------------

BASE = "http://cloud:8080/compute/v2.1/servers"


def test_last_page_has_no_next_link() -> None:
    assert next_href(BASE, {}, Page(ITEMS, None), None) is None


def test_next_link_carries_the_limit_and_the_new_marker() -> None:
    href = next_href(BASE, {"limit": "2", "marker": "id-1"}, Page(ITEMS[2:4], "id-3"), 2)
    assert href == f"{BASE}?limit=2&marker=id-3"


def test_next_link_keeps_the_other_query_parameters() -> None:
    href = next_href(BASE, {"status": "ACTIVE", "name": "web"}, Page(ITEMS[:2], "id-1"), 2)
    assert href is not None
    assert dict(parse_qsl(urlsplit(href).query)) == {
        "status": "ACTIVE",
        "name": "web",
        "limit": "2",
        "marker": "id-1",
    }


def test_next_link_without_a_limit_names_only_the_marker() -> None:
    assert next_href(BASE, {}, Page(ITEMS[:2], "id-1"), None) == f"{BASE}?marker=id-1"


def test_next_link_escapes_query_values() -> None:
    href = next_href(BASE, {"name": "a b&c"}, Page(ITEMS[:1], "id/0"), None)
    assert href == f"{BASE}?name=a+b%26c&marker=id%2F0"

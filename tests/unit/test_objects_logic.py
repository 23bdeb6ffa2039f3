"""Object-store pure logic: checksum check values, and listing (prefix, delimiter, paging) on a real
in-memory SQLite with the object-store migrations."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.blobs import Blobs
from appliance.context import Context
from appliance.db import migrate, open_db
from appliance.objects import checksums, inline
from appliance.objects.errors import S3Error
from appliance.objects.migrations import migrations
from appliance.objects.records import Attributes, Checks, Conditions, Version
from appliance.objects.service import BLOB_SUFFIX, ObjectStore

CHECK = b"123456789"  # the standard CRC check input


@pytest.mark.parametrize(
    ("algorithm", "value"),
    [
        ("crc32", 0xCBF43926),
        ("crc32c", 0xE3069283),
        ("crc64nvme", 0xAE8B14860A799888),
    ],
)
def test_crc_check_values(algorithm: str, value: int) -> None:
    raw = base64.b64decode(checksums.of_bytes(algorithm, CHECK))
    assert int.from_bytes(raw, "big") == value


@pytest.mark.parametrize(
    ("algorithm", "hexdigest"),
    [
        ("sha1", "f7c3bc1d808e04732adf679965ccc34ca7ae3441"),
        ("sha256", "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"),
    ],
)
def test_sha_check_values(algorithm: str, hexdigest: str) -> None:
    assert base64.b64decode(checksums.of_bytes(algorithm, CHECK)).hex() == hexdigest


def test_crc_of_the_empty_string_is_zero() -> None:
    for algorithm in ("crc32", "crc32c", "crc64nvme"):
        assert set(base64.b64decode(checksums.of_bytes(algorithm, b""))) == {0}


def test_checksums_fed_in_pieces_equal_the_checksum_of_the_whole() -> None:
    data = bytes(range(256)) * 40
    for algorithm in checksums.ALGORITHMS:
        h = checksums.new(algorithm)
        for i in range(0, len(data), 777):
            h.update(data[i : i + 777])
        assert checksums.b64(h.digest()) == checksums.of_bytes(algorithm, data)


def test_composite_checksum_is_the_checksum_of_the_part_checksums_with_a_count() -> None:
    parts = [checksums.of_bytes("crc32", p) for p in (b"a" * 10, b"b" * 10)]
    raw = b"".join(base64.b64decode(p) for p in parts)
    assert checksums.composite("crc32", parts) == checksums.of_bytes("crc32", raw) + "-2"


# -- listing ---------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    db = open_db(None)
    migrate(db, [migrations])
    db.execute("INSERT INTO buckets (name, project_id, created_at) VALUES ('b', 'p', '2026-01-01')")
    return ObjectStore(db, Blobs(tmp_path / "blobs"))


def add(store: ObjectStore, *keys: str, versions: int = 1) -> None:
    for key in keys:
        store.db.execute("UPDATE versions SET is_latest = 0 WHERE bucket = 'b' AND key = ?", [key])
        for n in range(versions):
            store.db.execute(
                "INSERT INTO versions (bucket, key, version_id, is_latest, modified, segments) "
                "VALUES ('b', ?, ?, ?, 0, ?)",
                [key, f"{n:032x}", int(n == versions - 1), json.dumps([])],
            )


def page(
    store: ObjectStore, prefix: str = "", delimiter: str = "", after: str = "", max_keys: int = 1000
) -> tuple[list[str], list[str], bool, str]:
    objects, prefixes, truncated, last = store.list_objects("b", prefix, delimiter, after, max_keys)
    return [o.key for o in objects], prefixes, truncated, last


def test_keys_list_in_binary_order_so_plus_sorts_before_slash(store: ObjectStore) -> None:
    add(store, "foo/x", "foo+1/x", "foo-bar", "é", "z")
    assert page(store)[0] == ["foo+1/x", "foo-bar", "foo/x", "z", "é"]
    assert page(store, delimiter="/")[1] == ["foo+1/", "foo/"]


def test_delimiter_rolls_keys_up_into_common_prefixes_below_the_prefix(
    store: ObjectStore,
) -> None:
    add(store, "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg", "photos/top.jpg")
    add(store, "other.txt")
    keys, prefixes, truncated, _ = page(store, prefix="photos/", delimiter="/")
    assert keys == ["photos/top.jpg"]
    assert prefixes == ["photos/2024/", "photos/2025/"]
    assert not truncated


def test_common_prefixes_count_toward_max_keys_and_paging_resumes_after_them(
    store: ObjectStore,
) -> None:
    add(store, "a/1", "a/2", "b", "c/1", "d")
    keys, prefixes, truncated, last = page(store, delimiter="/", max_keys=2)
    assert (keys, prefixes, truncated, last) == (["b"], ["a/"], True, "b")
    keys, prefixes, truncated, last = page(store, delimiter="/", after=last, max_keys=2)
    assert (keys, prefixes, truncated) == (["d"], ["c/"], False)


def test_paging_from_a_common_prefix_marker_skips_its_keys(store: ObjectStore) -> None:
    add(store, "a/1", "a/2", "b")
    _, prefixes, truncated, last = page(store, delimiter="/", max_keys=1)
    assert (prefixes, truncated, last) == (["a/"], True, "a/")
    assert page(store, delimiter="/", after="a/")[:2] == (["b"], [])


def test_a_multi_character_delimiter_works(store: ObjectStore) -> None:
    add(store, "x--y--z", "x--w", "v")
    assert page(store, delimiter="--")[:2] == (["v"], ["x--"])


def test_max_keys_zero_lists_nothing_and_is_not_truncated(store: ObjectStore) -> None:
    add(store, "a")
    assert page(store, max_keys=0) == ([], [], False, "")


def test_deleted_and_noncurrent_versions_are_not_listed(store: ObjectStore) -> None:
    add(store, "k", versions=3)
    store.db.execute(
        "INSERT INTO versions (bucket, key, version_id, is_latest, delete_marker, modified) "
        "VALUES ('b', 'gone', 'x', 1, 1, 0)"
    )
    assert page(store)[0] == ["k"]


def versions_page(
    store: ObjectStore,
    prefix: str = "",
    delimiter: str = "",
    key_marker: str = "",
    version_marker: str = "",
    max_keys: int = 1000,
) -> tuple[list[str], bool]:
    entries, truncated = store.list_versions(
        "b", prefix, delimiter, key_marker, version_marker, max_keys
    )
    shown = [e if isinstance(e, str) else f"{e.key}@{int(e.version_id, 16)}" for e in entries]
    return shown, truncated


def test_versions_list_newest_first_per_key_and_page_by_version_marker(
    store: ObjectStore,
) -> None:
    add(store, "a", versions=3)
    add(store, "b")
    assert versions_page(store, max_keys=2) == (["a@2", "a@1"], True)
    rest = versions_page(store, key_marker="a", version_marker=f"{1:032x}")
    assert rest == (["a@0", "b@0"], False)


def test_versions_honour_the_delimiter(store: ObjectStore) -> None:
    add(store, "dir/x", "dir/y", versions=2)
    add(store, "top", "zdir/q")
    assert versions_page(store, delimiter="/") == (["dir/", "top@0", "zdir/"], False)
    assert versions_page(store, prefix="dir/", delimiter="/") == (
        ["dir/x@1", "dir/x@0", "dir/y@1", "dir/y@0"],
        False,
    )
    assert versions_page(store, delimiter="/", max_keys=1) == (["dir/"], True)
    assert versions_page(store, delimiter="/", key_marker="dir/") == (["top@0", "zdir/"], False)


def test_version_rows_round_trip_through_the_dataclass(store: ObjectStore) -> None:
    add(store, "k")
    v = store.latest("b", "k")
    assert isinstance(v, Version) and v.is_latest and v.segments == []


# -- group commit ----------------------------------------------------------------------------


def member() -> Context:
    return Context(
        user_id="u", user_name="u", user_domain_id="default",
        roles=frozenset({"member", "reader"}), project_id="p",
    )  # fmt: skip


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_concurrent_puts_share_commits_and_a_failed_one_leaves_no_blob(store: ObjectStore) -> None:
    commits: list[str] = []
    store.db.conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)

    async def run() -> list[object]:
        await store.put(member(), "b", "taken", body(b"first"), Attributes(), Checks())
        commits.clear()
        puts = [
            # both kinds: inline (at most INLINE_MAX bytes) and blob files (from k9 up)
            store.put(member(), "b", f"k{i}", body(b"x" * i * 8000), Attributes(), Checks())
            for i in range(20)
        ]
        clash = store.put(member(), "b", "taken", body(b"second" * 20000), Attributes(), Checks(),
                          Conditions(if_none_match="*"))  # fmt: skip
        return await asyncio.gather(*puts, clash, return_exceptions=True)

    results = asyncio.run(run())
    assert all(isinstance(r, Version) for r in results[:20])
    assert isinstance(results[20], S3Error) and results[20].code == "PreconditionFailed"
    assert len(commits) < 20
    assert page(store)[0] == sorted(["taken", *(f"k{i}" for i in range(20))])
    files, inlined = list(store.blobs.keys(BLOB_SUFFIX)), inline.keys(store.db)
    assert len(files) == 11 and len(inlined) == 10  # "taken" (inline) and k0..k8
    assert sorted([*files, *inlined]) == sorted(store.referenced())
    got = asyncio.run(_read(store, "taken"))
    assert got == b"first"


async def _read(store: ObjectStore, key: str) -> bytes:
    v = store.version("b", key, None)
    return b"".join([chunk async for chunk in store.read(v)])


# -- Swift account metadata ----------------------------------------------------------------------


def test_account_metadata_merges_drops_empty_values_and_needs_a_member(store: ObjectStore) -> None:
    store.set_account_meta(member(), {"color": "blue", "size": "big"})
    store.set_account_meta(member(), {"size": "", "shape": "round"})
    assert store.account_meta("p") == {"color": "blue", "shape": "round"}
    assert store.account_meta("other") == {}
    reader = Context(
        user_id="r", user_name="r", user_domain_id="default",
        roles=frozenset({"reader"}), project_id="p",
    )  # fmt: skip
    with pytest.raises(S3Error) as denied:
        store.set_account_meta(reader, {"color": "red"})
    assert denied.value.code == "AccessDenied"
    assert store.account_meta("p")["color"] == "blue"

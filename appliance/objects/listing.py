"""Listing pages of objects and of versions, from the (bucket, key) index: no directory walk, and
a skip-scan past each common prefix instead of reading every key under it."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.objects.records import Version, select, select_one


def _common(key: str, prefix: str, delimiter: str) -> str:
    """The common prefix `key` rolls up into under `delimiter`, or "" if it is listed itself."""
    cut = key.find(delimiter, len(prefix)) if delimiter else -1
    return key[: cut + len(delimiter)] if cut >= 0 else ""


def _upper(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix`."""
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def objects(
    db: Database, bucket: str, prefix: str, delimiter: str, after: str, max_keys: int
) -> tuple[list[Version], list[str], bool, str]:
    """One page: (objects, common prefixes, truncated, last key or prefix returned), in UTF-8
    binary key order, served from the (bucket, key) index with a skip-scan over delimiters."""
    objects: list[Version] = []
    prefixes: list[str] = []
    upper = _upper(prefix)
    cursor, inclusive = max(after, prefix), not after or after < prefix
    last = ""
    if max_keys <= 0:
        return [], [], False, ""
    while len(objects) + len(prefixes) < max_keys + 1:
        want = max_keys + 1 - len(objects) - len(prefixes)
        sql = (
            "SELECT * FROM versions WHERE bucket = ? AND is_latest = 1 AND delete_marker = 0 "
            f"AND key {'>=' if inclusive else '>'} ?"
        )
        params: list[Any] = [bucket, cursor]
        if upper is not None:
            sql += " AND key < ?"
            params.append(upper)
        sql += " ORDER BY key LIMIT ?"
        params.append(want if not delimiter else min(want, 100))
        rows = select(db, sql, params)
        if not rows:
            break
        skipped = False
        for row in rows:
            key = row["key"]
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                if common != (prefixes[-1] if prefixes else None) and common != after:
                    prefixes.append(common)
                    last = common
                cursor, inclusive = _upper(common) or common, True
                skipped = True
                break
            objects.append(Version.from_row(row))
            last = key
            cursor, inclusive = key, False
            if len(objects) + len(prefixes) >= max_keys + 1:
                break
        if not skipped and len(rows) < params[-1]:
            break
    truncated = len(objects) + len(prefixes) > max_keys
    if truncated:
        # Drop whichever entry sorts last (objects and prefixes interleave in key order).
        last_obj = objects[-1].key if objects else ""
        last_pre = prefixes[-1] if prefixes else ""
        if last_obj > last_pre:
            objects.pop()
        else:
            prefixes.pop()
        last = max(objects[-1].key if objects else "", prefixes[-1] if prefixes else "")
    return objects, prefixes, truncated, last


def versions(
    db: Database,
    bucket: str,
    prefix: str,
    delimiter: str,
    key_marker: str,
    version_marker: str,
    max_keys: int,
) -> tuple[list[Version | str], bool]:
    """One page of versions (each key's newest first) and common prefixes (str), in key order,
    and whether more follow. A common prefix counts as one entry, as in ListObjects."""
    upper = _upper(prefix)
    if key_marker and delimiter and _common(key_marker, prefix, delimiter) == key_marker:
        after: tuple[str, list[Any]] = ("key >= ?", [_upper(key_marker)])  # past the prefix
    elif key_marker and version_marker:
        marker = select_one(
            db,
            "SELECT id FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
            [bucket, key_marker, version_marker],
        )
        after = (
            "(key > ? OR (key = ? AND id < ?))",
            [key_marker, key_marker, marker["id"] if marker else 0],
        )
    elif key_marker:
        after = ("key > ?", [key_marker])
    else:
        after = ("key >= ?", [prefix])
    entries: list[Version | str] = []
    while len(entries) < max_keys + 1:
        sql = f"SELECT * FROM versions WHERE bucket = ? AND key >= ? AND {after[0]}"
        params: list[Any] = [bucket, prefix, *after[1]]
        if upper is not None:
            sql += " AND key < ?"
            params.append(upper)
        want = max_keys + 1 - len(entries)
        sql += " ORDER BY key, id DESC LIMIT ?"
        params.append(min(want, 100) if delimiter else want)
        rows = select(db, sql, params)
        jumped = False
        for row in rows:
            common = _common(row["key"], prefix, delimiter)
            if common:
                entries.append(common)
                after = ("key >= ?", [_upper(common)])
                jumped = True
                break
            v = Version.from_row(row)
            entries.append(v)
            after = ("(key > ? OR (key = ? AND id < ?))", [v.key, v.key, v.id])
            if len(entries) > max_keys:
                break
        if not jumped and len(rows) < params[-1]:
            break
    return entries[:max_keys], len(entries) > max_keys

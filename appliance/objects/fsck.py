"""Offline consistency check of the object store: SQLite rows against blob files.

SQLite is the source of truth (s3gw ADR 0009 takes the same stance: "orphaned files... countered
by an offline fsck tool"). Found, and with `repair` fixed:

* a version or multipart part whose blob (file, or inline row for a small object) is missing,
  or has the wrong size or MD5: the row is
  dropped (the object is lost; keeping a row that reads back wrong bytes is worse), and a wrong
  blob is moved to <data-dir>/lost+found/objects/ rather than deleted;
* an object blob no row names: deleted (a crash between rename and commit), and likewise a
  small object's inline bytes (table inline_data) that no version names;
* temp files in blobs/tmp: deleted (a crash mid-upload);
* bucket object/byte counters that disagree with the rows: recomputed.

Runs only while no `nube serve` holds the data directory (the caller takes the lock).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sqlite_utils import Database

from appliance.blobs import Blobs
from appliance.objects import inline
from appliance.objects.service import BLOB_SUFFIX

READ = 1 << 20


@dataclass(slots=True)
class Problem:
    kind: str  # missing-blob, bad-size, bad-md5, orphan-blob, temp-file, bad-counters
    where: str  # bucket/key (version id), upload part, or a file name
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}" + (f" ({self.detail})" if self.detail else "")


@dataclass(slots=True)
class Report:
    checked_versions: int = 0
    checked_parts: int = 0
    checked_blobs: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: bool = False

    @property
    def clean(self) -> bool:
        return not self.problems


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while data := fh.read(READ):
            h.update(data)
    return h.hexdigest()


def _segment_problem(db: Database, blobs: Blobs, blob: str, size: int) -> tuple[str, str] | None:
    """(kind, detail) if the segment is not a file (or inline row) of `size` bytes."""
    if inline.is_inline(blob):
        stored = inline.size(db, blob)
        if stored is None:
            return "missing-blob", blob
        if stored != size:
            return "bad-size", f"{blob}: {stored} bytes stored, {size} in the row"
        return None
    try:
        path = blobs.path(blob)
    except ValueError:
        return "missing-blob", f"bad blob name {blob!r}"
    if not path.is_file():
        return "missing-blob", blob
    actual = path.stat().st_size
    if actual != size:
        return "bad-size", f"{blob}: {actual} bytes on disk, {size} in the row"
    return None


def _segment_md5(db: Database, blobs: Blobs, key: str) -> str:
    if inline.is_inline(key):
        data = inline.load(db, key)
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    return _md5(blobs.path(key))


def _exists(db: Database, blobs: Blobs, key: str) -> bool:
    if inline.is_inline(key):
        return inline.size(db, key) is not None
    return blobs.exists(key)


def _version_etag(db: Database, blobs: Blobs, segments: list[list[object]], multipart: bool) -> str:
    md5s = [_segment_md5(db, blobs, str(s[0])) for s in segments]
    if not multipart:
        return md5s[0] if md5s else hashlib.md5(b"", usedforsecurity=False).hexdigest()
    joined = b"".join(bytes.fromhex(m) for m in md5s)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(md5s)}"


def check(db: Database, blobs: Blobs, lost_found: Path, repair: bool = False) -> Report:
    report = Report(repaired=repair)
    referenced: set[str] = set()
    bad_versions: list[tuple[int, str, str, list[str]]] = []  # id, bucket, key, blobs to quarantine
    rows = db.execute(
        "SELECT id, bucket, key, version_id, size, etag, segments, parts FROM versions "
        "WHERE delete_marker = 0 ORDER BY bucket, key, id"
    ).fetchall()
    for vid, bucket, key, version_id, size, etag, segments_json, parts_json in rows:
        report.checked_versions += 1
        segments = json.loads(segments_json)
        where = f"{bucket}/{key}" + (f" (version {version_id})" if version_id != "null" else "")
        referenced.update(str(s[0]) for s in segments)
        problem = None
        if sum(int(s[1]) for s in segments) != size:
            problem = ("bad-size", "segment sizes do not add up to the object size")
        for blob, seg_size in segments:
            problem = problem or _segment_problem(db, blobs, str(blob), int(seg_size))
        wrong: list[str] = []
        if problem is None:
            actual = _version_etag(db, blobs, segments, multipart=bool(json.loads(parts_json)))
            if actual != etag:
                problem = ("bad-md5", f"content MD5 {actual}, ETag {etag}")
                wrong = [str(s[0]) for s in segments]
        else:
            wrong = [str(s[0]) for s in segments if _exists(db, blobs, str(s[0]))]
        if problem:
            report.problems.append(Problem(problem[0], where, problem[1]))
            bad_versions.append((vid, bucket, key, wrong))
    bad_parts: list[tuple[str, int, str | None]] = []
    for upload_id, number, blob, size, etag in db.execute(
        "SELECT upload_id, part_number, blob, size, etag FROM parts ORDER BY upload_id, part_number"
    ).fetchall():
        report.checked_parts += 1
        referenced.add(blob)
        problem = _segment_problem(db, blobs, blob, size)
        if problem is None and _md5(blobs.path(blob)) != etag:
            problem = ("bad-md5", f"{blob}: content MD5 differs from part ETag {etag}")
        if problem:
            where = f"upload {upload_id} part {number}"
            report.problems.append(Problem(problem[0], where, problem[1]))
            bad_parts.append((upload_id, number, blob if blobs.exists(blob) else None))
    orphans = []
    for name in blobs.keys(BLOB_SUFFIX):
        report.checked_blobs += 1
        if name not in referenced:
            orphans.append(name)
            report.problems.append(Problem("orphan-blob", name, "no row names it"))
    inline_orphans = sorted(inline.keys(db) - referenced)
    for name in inline_orphans:
        report.problems.append(Problem("orphan-blob", name, "no row names it"))
    temps = sorted(blobs.tmp.glob("*.part"))
    for temp in temps:
        report.problems.append(Problem("temp-file", str(temp.relative_to(blobs.root.parent))))
    report.problems += _counter_problems(db)
    if repair:
        _drop_versions(db, blobs, lost_found, bad_versions)
        _drop_parts(db, blobs, lost_found, bad_parts)
        for name in orphans:
            blobs.delete(name)
        with db.atomic():
            inline.drop(db, inline_orphans)
        for temp in temps:
            temp.unlink(missing_ok=True)
        _recount(db)
    return report


def _quarantine(db: Database, blobs: Blobs, lost_found: Path, names: list[str]) -> None:
    """Move the blobs to lost+found (an inline one is written there, then its row deleted)."""
    lost_found.mkdir(parents=True, exist_ok=True)
    for name in names:
        if inline.is_inline(name):
            target = lost_found / name.replace(":", "-")
            target.write_bytes(inline.load(db, name))
            with db.atomic():
                inline.drop(db, [name])
        else:
            os.replace(blobs.path(name), lost_found / name)


def _drop_versions(
    db: Database, blobs: Blobs, lost_found: Path, bad: list[tuple[int, str, str, list[str]]]
) -> None:
    with db.atomic():
        for vid, bucket, key, _ in bad:
            latest = db.execute("SELECT is_latest FROM versions WHERE id = ?", [vid]).fetchone()
            db.execute("DELETE FROM versions WHERE id = ?", [vid])
            if latest and latest[0]:
                db.execute(
                    "UPDATE versions SET is_latest = 1 WHERE id = (SELECT max(id) FROM versions "
                    "WHERE bucket = ? AND key = ?)",
                    [bucket, key],
                )
    for *_, wrong in bad:
        _quarantine(db, blobs, lost_found, wrong)


def _drop_parts(
    db: Database, blobs: Blobs, lost_found: Path, bad: list[tuple[str, int, str | None]]
) -> None:
    with db.atomic():
        for upload_id, number, _ in bad:
            db.execute(
                "DELETE FROM parts WHERE upload_id = ? AND part_number = ?", [upload_id, number]
            )
    _quarantine(db, blobs, lost_found, [blob for *_, blob in bad if blob])


_TRUE_COUNTS = (
    "SELECT b.name, b.objects, b.bytes, count(v.id), coalesce(sum(v.size), 0) FROM buckets b "
    "LEFT JOIN versions v ON v.bucket = b.name AND v.delete_marker = 0 GROUP BY b.name"
)


def _counter_problems(db: Database) -> list[Problem]:
    return [
        Problem("bad-counters", name, f"{objects} objects/{size} bytes recorded, {n}/{total} real")
        for name, objects, size, n, total in db.execute(_TRUE_COUNTS).fetchall()
        if (objects, size) != (n, total)
    ]


def _recount(db: Database) -> None:
    with db.atomic():
        for name, _, _, n, total in db.execute(_TRUE_COUNTS).fetchall():
            db.execute("UPDATE buckets SET objects = ?, bytes = ? WHERE name = ?", [n, total, name])


def render(report: Report) -> str:
    lines = [str(p) for p in report.problems]
    summary = (
        f"checked {report.checked_versions} object version(s), {report.checked_parts} upload "
        f"part(s), {report.checked_blobs} blob file(s): "
    )
    if report.clean:
        summary += "no problems"
    else:
        summary += f"{len(report.problems)} problem(s)" + (
            ", repaired" if report.repaired else "; run with --repair to fix"
        )
    return "\n".join([*lines, summary])


def main(data_dir: Path, db_path: Path, blobs_dir: Path, repair: bool) -> int:
    """`nube fsck`: 0 clean (or repaired), 1 problems left, 2 cannot run."""
    from appliance.db import open_db
    from appliance.server import AlreadyRunning, lock_data_dir

    if not db_path.is_file():
        print(f"nube fsck: no database at {db_path}", file=sys.stderr)
        return 2
    try:
        lock = lock_data_dir(data_dir)
    except AlreadyRunning as exc:
        print(f"nube fsck: refusing to run: {exc}", file=sys.stderr)
        return 2
    try:
        db = open_db(db_path)
        try:
            report = check(db, Blobs(blobs_dir), data_dir / "lost+found" / "objects", repair)
        finally:
            db.close()
    finally:
        lock.close()
    print(render(report))
    return 0 if report.clean or repair else 1

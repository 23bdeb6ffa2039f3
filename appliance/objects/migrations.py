"""Object-store tables. SQLite is the source of truth: a blob without a row is an orphan to sweep."""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("objects")

_INITIAL = [
    # Counters (objects, bytes) change in the same transaction as the versions they count.
    """CREATE TABLE buckets (
        name TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        versioning TEXT NOT NULL DEFAULT '',
        acl TEXT NOT NULL DEFAULT 'private',
        policy TEXT,
        cors TEXT,
        tagging TEXT,
        meta TEXT NOT NULL DEFAULT '{}',
        objects INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX buckets_project ON buckets (project_id, name)",
    # Every version of every object, delete markers included; `segments` is a JSON list of
    # [blob key, size] (one for a plain PUT, one per part for a completed multipart upload).
    """CREATE TABLE versions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        bucket TEXT NOT NULL REFERENCES buckets(name),
        key TEXT NOT NULL,
        version_id TEXT NOT NULL,
        is_latest INTEGER NOT NULL,
        delete_marker INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL DEFAULT 0,
        etag TEXT NOT NULL DEFAULT '',
        modified REAL NOT NULL,
        content_type TEXT NOT NULL DEFAULT '',
        headers TEXT NOT NULL DEFAULT '{}',
        meta TEXT NOT NULL DEFAULT '{}',
        checksum_algorithm TEXT NOT NULL DEFAULT '',
        checksum TEXT NOT NULL DEFAULT '',
        checksum_type TEXT NOT NULL DEFAULT '',
        tagging TEXT NOT NULL DEFAULT '{}',
        acl TEXT NOT NULL DEFAULT '',
        parts TEXT NOT NULL DEFAULT '[]',
        segments TEXT NOT NULL DEFAULT '[]')""",
    "CREATE UNIQUE INDEX versions_latest ON versions (bucket, key) WHERE is_latest = 1",
    "CREATE INDEX versions_key ON versions (bucket, key, id)",
    """CREATE TABLE uploads (
        upload_id TEXT PRIMARY KEY,
        bucket TEXT NOT NULL REFERENCES buckets(name),
        key TEXT NOT NULL,
        initiated REAL NOT NULL,
        content_type TEXT NOT NULL DEFAULT '',
        headers TEXT NOT NULL DEFAULT '{}',
        meta TEXT NOT NULL DEFAULT '{}',
        checksum_algorithm TEXT NOT NULL DEFAULT '',
        checksum_type TEXT NOT NULL DEFAULT '',
        tagging TEXT NOT NULL DEFAULT '{}',
        acl TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX uploads_key ON uploads (bucket, key, initiated)",
    """CREATE TABLE parts (
        upload_id TEXT NOT NULL REFERENCES uploads(upload_id) ON DELETE CASCADE,
        part_number INTEGER NOT NULL,
        blob TEXT NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        checksum TEXT NOT NULL DEFAULT '',
        modified REAL NOT NULL,
        PRIMARY KEY (upload_id, part_number))""",
    "CREATE TABLE swift_accounts (project_id TEXT PRIMARY KEY, meta TEXT NOT NULL DEFAULT '{}')",
]


@migrations()
def m001_initial(db: Database) -> None:
    for statement in _INITIAL:
        db.execute(statement)


@migrations()
def m00X_inline_data(db: Database) -> None:
    # Bodies of small objects, named by their version's segment key "inline:<id>" (see inline.py).
    db.execute("CREATE TABLE inline_data (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")

"""Volume tables: volumes (with their one attachment, as volumes are not multiattach here) and snapshots."""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("volumes")

_INITIAL = [
    """CREATE TABLE volumes (
        id TEXT PRIMARY KEY,
        name TEXT,
        description TEXT,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        size INTEGER NOT NULL,
        status TEXT NOT NULL,
        bootable INTEGER NOT NULL DEFAULT 0,
        volume_type TEXT NOT NULL,
        snapshot_id TEXT,
        source_volid TEXT,
        image_id TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        image_metadata TEXT,
        server_id TEXT,
        attachment_id TEXT,
        device TEXT,
        target TEXT,
        attached_at TEXT,
        delete_on_termination INTEGER NOT NULL DEFAULT 0,
        fault TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    "CREATE INDEX volumes_project ON volumes (project_id)",
    "CREATE INDEX volumes_server ON volumes (server_id)",
    """CREATE TABLE volume_snapshots (
        id TEXT PRIMARY KEY,
        volume_id TEXT NOT NULL,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        name TEXT,
        description TEXT,
        size INTEGER NOT NULL,
        status TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    "CREATE INDEX volume_snapshots_volume ON volume_snapshots (volume_id)",
]


@migrations()
def m001_initial(db: Database) -> None:
    for statement in _INITIAL:
        db.execute(statement)

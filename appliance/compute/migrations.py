"""Compute tables: flavors (with access lists and extra specs), keypairs, servers, instance actions,
and console tokens."""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("compute")

_INITIAL = [
    """CREATE TABLE flavors (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        vcpus INTEGER NOT NULL,
        ram INTEGER NOT NULL,
        disk INTEGER NOT NULL,
        ephemeral INTEGER NOT NULL DEFAULT 0,
        swap INTEGER NOT NULL DEFAULT 0,
        rxtx_factor REAL NOT NULL DEFAULT 1.0,
        is_public INTEGER NOT NULL DEFAULT 1,
        disabled INTEGER NOT NULL DEFAULT 0,
        description TEXT,
        extra_specs TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL)""",
    """CREATE TABLE flavor_access (
        flavor_id TEXT NOT NULL REFERENCES flavors(id) ON DELETE CASCADE,
        project_id TEXT NOT NULL,
        PRIMARY KEY (flavor_id, project_id))""",
    """CREATE TABLE keypairs (
        user_id TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        public_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (user_id, name))""",
    """CREATE TABLE servers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        image_id TEXT,
        flavor TEXT NOT NULL,
        old_flavor TEXT,
        vm_state TEXT NOT NULL,
        task_state TEXT,
        power_state INTEGER NOT NULL DEFAULT 0,
        key_name TEXT,
        key_data TEXT,
        user_data TEXT,
        config_drive INTEGER NOT NULL DEFAULT 1,
        metadata TEXT NOT NULL DEFAULT '{}',
        tags TEXT NOT NULL DEFAULT '[]',
        description TEXT,
        locked INTEGER NOT NULL DEFAULT 0,
        locked_reason TEXT,
        locked_by TEXT,
        fault TEXT,
        access_ipv4 TEXT NOT NULL DEFAULT '',
        access_ipv6 TEXT NOT NULL DEFAULT '',
        launch_index INTEGER NOT NULL DEFAULT 0,
        reservation_id TEXT NOT NULL,
        hostname TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        launched_at TEXT,
        terminated_at TEXT,
        deleted_at TEXT)""",
    "CREATE INDEX servers_project ON servers (project_id)",
    """CREATE TABLE instance_actions (
        id INTEGER PRIMARY KEY,
        server_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        action TEXT NOT NULL,
        user_id TEXT NOT NULL,
        project_id TEXT NOT NULL,
        start_time TEXT NOT NULL,
        finish_time TEXT,
        message TEXT,
        result TEXT,
        traceback TEXT,
        updated_at TEXT NOT NULL)""",
    "CREATE INDEX instance_actions_server ON instance_actions (server_id)",
    """CREATE TABLE console_tokens (
        token_hash TEXT PRIMARY KEY,
        server_id TEXT NOT NULL,
        expires_at REAL NOT NULL)""",
]


@migrations()
def m001_initial(db: Database) -> None:
    for statement in _INITIAL:
        db.execute(statement)


# DevStack's flavors (m1.nano/micro for tiny test guests) plus the usual m1 ladder.
SEED_FLAVORS = (
    ("42", "m1.nano", 1, 128, 1),
    ("84", "m1.micro", 1, 192, 1),
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
    ("5", "m1.xlarge", 8, 16384, 160),
)


@migrations()
def m002_seed_flavors(db: Database) -> None:
    for flavor_id, name, vcpus, ram, disk in SEED_FLAVORS:
        db.execute(
            "INSERT INTO flavors (id, name, vcpus, ram, disk, created_at) "
            "VALUES (?,?,?,?,?,strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
            [flavor_id, name, vcpus, ram, disk],
        )

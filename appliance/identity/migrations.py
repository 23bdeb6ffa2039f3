"""Identity tables."""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("identity")

_INITIAL = [
    """CREATE TABLE domains (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        domain_id TEXT NOT NULL REFERENCES domains(id),
        description TEXT NOT NULL DEFAULT '',
        enabled INTEGER NOT NULL DEFAULT 1,
        tags TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        UNIQUE (domain_id, name))""",
    """CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        domain_id TEXT NOT NULL REFERENCES domains(id),
        enabled INTEGER NOT NULL DEFAULT 1,
        password_hash TEXT,
        default_project_id TEXT,
        extra TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        UNIQUE (domain_id, name))""",
    """CREATE TABLE roles (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL)""",
    """CREATE TABLE role_assignments (
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        target_type TEXT NOT NULL CHECK (target_type IN ('project', 'domain', 'system')),
        target_id TEXT NOT NULL,
        role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, target_type, target_id, role_id))""",
    "CREATE INDEX role_assignments_target ON role_assignments (target_type, target_id)",
    """CREATE TABLE application_credentials (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        description TEXT NOT NULL DEFAULT '',
        secret_hash TEXT NOT NULL,
        roles TEXT NOT NULL,
        unrestricted INTEGER NOT NULL DEFAULT 0,
        expires_at TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (user_id, name))""",
    # Generic v3 credentials; EC2 ones have id = sha256(access) and an encrypted {access, secret} blob.
    """CREATE TABLE credentials (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,
        type TEXT NOT NULL,
        blob TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
    "CREATE INDEX credentials_user ON credentials (user_id)",
    # Revocation events: a token is refused if its audit id matches, or it was issued for the user
    # before `issued_before` (password change). Rows are pruned once every token they cover expired.
    """CREATE TABLE revocations (
        id INTEGER PRIMARY KEY,
        audit_id TEXT,
        user_id TEXT,
        issued_before REAL NOT NULL,
        expires_at REAL NOT NULL)""",
]


@migrations()
def m001_initial(db: Database) -> None:
    for statement in _INITIAL:
        db.execute(statement)


@migrations()
def m002_unified_limits(db: Database) -> None:
    """Keystone unified limits: defaults per service resource, and overrides per project."""
    db.execute(
        """CREATE TABLE registered_limits (
            id TEXT PRIMARY KEY,
            service_id TEXT NOT NULL,
            region_id TEXT,
            resource_name TEXT NOT NULL,
            default_limit INTEGER NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            UNIQUE (service_id, region_id, resource_name))"""
    )
    db.execute(
        """CREATE TABLE limits (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            service_id TEXT NOT NULL,
            region_id TEXT,
            resource_name TEXT NOT NULL,
            resource_limit INTEGER NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            UNIQUE (project_id, service_id, region_id, resource_name))"""
    )


# Every table an S3 signature's authority rests on: the credential, its user and project, their
# domains, the roles and role assignments.
WATCHED = ("domains", "projects", "users", "roles", "role_assignments", "credentials")


@migrations()
def m003_identity_generation(db: Database) -> None:
    """A counter that every committed change to the watched tables moves on (triggers, so every
    writer counts, in any process): what was read about a principal at generation n is still true
    while the counter reads n."""
    db.execute("CREATE TABLE identity_generation (n INTEGER NOT NULL)")
    db.execute("INSERT INTO identity_generation (n) VALUES (0)")
    for table in WATCHED:
        for event in ("INSERT", "UPDATE", "DELETE"):
            db.execute(
                f"CREATE TRIGGER {table}_{event.lower()}_generation AFTER {event} ON {table} "
                "BEGIN UPDATE identity_generation SET n = n + 1; END"
            )

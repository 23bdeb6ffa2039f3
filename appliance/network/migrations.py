"""Network tables: networks, subnets, ports (with their fixed IPs) and security groups."""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("network")

_INITIAL = [
    """CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        project_id TEXT NOT NULL,
        admin_state_up INTEGER NOT NULL DEFAULT 1,
        shared INTEGER NOT NULL DEFAULT 0,
        external INTEGER NOT NULL DEFAULT 0,
        mtu INTEGER NOT NULL DEFAULT 1500,
        revision_number INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    "CREATE INDEX networks_project ON networks (project_id)",
    """CREATE TABLE subnets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        project_id TEXT NOT NULL,
        network_id TEXT NOT NULL REFERENCES networks (id),
        cidr TEXT NOT NULL,
        gateway_ip TEXT,
        enable_dhcp INTEGER NOT NULL DEFAULT 1,
        allocation_pools TEXT NOT NULL DEFAULT '[]',
        dns_nameservers TEXT NOT NULL DEFAULT '[]',
        host_routes TEXT NOT NULL DEFAULT '[]',
        revision_number INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    "CREATE INDEX subnets_network ON subnets (network_id)",
    """CREATE TABLE ports (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        project_id TEXT NOT NULL,
        network_id TEXT NOT NULL REFERENCES networks (id),
        mac_address TEXT NOT NULL UNIQUE,
        admin_state_up INTEGER NOT NULL DEFAULT 1,
        device_id TEXT NOT NULL DEFAULT '',
        device_owner TEXT NOT NULL DEFAULT '',
        security_groups TEXT NOT NULL DEFAULT '[]',
        auto_delete INTEGER NOT NULL DEFAULT 0,
        revision_number INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    "CREATE INDEX ports_network ON ports (network_id)",
    "CREATE INDEX ports_device ON ports (device_id)",
    """CREATE TABLE fixed_ips (
        port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
        subnet_id TEXT NOT NULL REFERENCES subnets (id),
        ip_address TEXT NOT NULL,
        PRIMARY KEY (subnet_id, ip_address))""",
    "CREATE INDEX fixed_ips_port ON fixed_ips (port_id)",
    """CREATE TABLE security_groups (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        project_id TEXT NOT NULL,
        revision_number INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    "CREATE INDEX security_groups_project ON security_groups (project_id)",
    """CREATE TABLE security_group_rules (
        id TEXT PRIMARY KEY,
        security_group_id TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
        project_id TEXT NOT NULL,
        direction TEXT NOT NULL,
        ethertype TEXT NOT NULL,
        protocol TEXT,
        port_range_min INTEGER,
        port_range_max INTEGER,
        remote_ip_prefix TEXT,
        remote_group_id TEXT,
        description TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
]


@migrations()
def m001_initial(db: Database) -> None:
    for sql in _INITIAL:
        db.execute(sql)


@migrations()
def m002_routers(db: Database) -> None:
    db.execute(
        """CREATE TABLE routers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            description TEXT NOT NULL DEFAULT '',
            project_id TEXT NOT NULL,
            admin_state_up INTEGER NOT NULL DEFAULT 1,
            routes TEXT NOT NULL DEFAULT '[]',
            revision_number INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)"""
    )
    db.execute("CREATE INDEX routers_project ON routers (project_id)")


@migrations()
def m003_floating_ips(db: Database) -> None:
    db.execute("ALTER TABLE routers ADD COLUMN gateway_port_id TEXT")
    db.execute(
        """CREATE TABLE floatingips (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            floating_network_id TEXT NOT NULL,
            floating_port_id TEXT NOT NULL,
            floating_ip_address TEXT NOT NULL,
            port_id TEXT,
            fixed_ip_address TEXT,
            router_id TEXT,
            revision_number INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)"""
    )


@migrations()
def m004_host_addresses(db: Database) -> None:
    """An address the host itself holds on a network's bridge (the default `public` network's gateway)."""
    db.execute(
        """CREATE TABLE host_addresses (
            network_id TEXT PRIMARY KEY REFERENCES networks (id) ON DELETE CASCADE,
            address TEXT NOT NULL,
            prefixlen INTEGER NOT NULL)"""
    )


@migrations()
def m005_port_security(db: Database) -> None:
    """Port security (a network's default, each port's own) and allowed address pairs."""
    db.execute("ALTER TABLE networks ADD COLUMN port_security INTEGER NOT NULL DEFAULT 1")
    db.execute("ALTER TABLE ports ADD COLUMN port_security INTEGER NOT NULL DEFAULT 1")
    db.execute("ALTER TABLE ports ADD COLUMN address_pairs TEXT NOT NULL DEFAULT '[]'")


@migrations()
def m006_router_snat(db: Database) -> None:
    db.execute("ALTER TABLE routers ADD COLUMN enable_snat INTEGER NOT NULL DEFAULT 1")

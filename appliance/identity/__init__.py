"""Identity: Keystone v3 compatible projects, users, roles, tokens, catalog and credentials."""

"""Identity: OAuth2 clients, console users, refresh tokens, JWT signing keys."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:05:000000"
VERSION = "1.38.0"
DESCRIPTION = "oauth clients, console users, refresh tokens, signing keys"


async def forwards() -> MigrationManager:
    """Apply 0005_identity.sql."""
    return sql_migration(migration_id=ID, description=DESCRIPTION, sql_file="0005_identity.sql")

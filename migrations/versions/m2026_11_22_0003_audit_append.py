"""audit_append(): chain and insert an audit entry in one server-side call."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:03:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit_append function"


async def forwards() -> MigrationManager:
    """Apply 0003_audit_append.sql."""
    return sql_migration(migration_id=ID, description=DESCRIPTION, sql_file="0003_audit_append.sql")

"""Initial schema: nodes, agencies, partitioned events, media, delivery ledger, audit log."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "initial schema"


async def forwards() -> MigrationManager:
    """Apply 0001_initial.sql."""
    return sql_migration(migration_id=ID, description=DESCRIPTION, sql_file="0001_initial.sql")

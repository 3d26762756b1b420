"""Retention: legal holds, PII vault and subject keys, sweep runs."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:07:000000"
VERSION = "1.38.0"
DESCRIPTION = "retention, legal holds and PII vault"


async def forwards() -> MigrationManager:
    """Apply 0007_retention.sql."""
    return sql_migration(migration_id=ID, description=DESCRIPTION, sql_file="0007_retention.sql")

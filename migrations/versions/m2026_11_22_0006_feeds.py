"""Feeds: commit-ordered feed positions, the pending queue and its trigger, acknowledgements."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:06:000000"
VERSION = "1.38.0"
DESCRIPTION = "feed positions and acknowledgements"


async def forwards() -> MigrationManager:
    """Apply 0006_feeds.sql."""
    return sql_migration(migration_id=ID, description=DESCRIPTION, sql_file="0006_feeds.sql")

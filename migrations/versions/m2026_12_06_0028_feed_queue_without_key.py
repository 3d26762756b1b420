"""feed_pending loses its key; the feed trigger its sort and conflict check (0028_*.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-12-06T00:00:28:000000"
VERSION = "1.38.0"
DESCRIPTION = "feed_pending without a primary key; plain inserts by the feed triggers"


async def forwards() -> MigrationManager:
    """Apply 0028_feed_queue_without_key.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0028_feed_queue_without_key.sql"
    )

"""The feed queue carries the columns the sequencer copies (0031_*.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-12-07T00:00:31:000000"
VERSION = "1.38.0"
DESCRIPTION = "the feed queue carries the columns the sequencer copies into feed_entry"


async def forwards() -> MigrationManager:
    """Apply 0031_feed_queue_carries_columns.sql."""
    return sql_migration(
        migration_id=ID,
        description=DESCRIPTION,
        sql_file="0031_feed_queue_carries_columns.sql",
    )

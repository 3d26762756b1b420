"""The feed sequencer reads feed_pending by an index; feed_entry loses its media GIN index
(0024_feed_pending_index.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-12-05T00:00:24:000000"
VERSION = "1.38.0"
DESCRIPTION = "feed_pending indexed on queued_at; feed_entry_media_idx dropped"


async def forwards() -> MigrationManager:
    """Apply 0024_feed_pending_index.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0024_feed_pending_index.sql"
    )

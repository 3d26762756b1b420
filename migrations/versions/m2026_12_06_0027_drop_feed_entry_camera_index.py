"""feed_entry loses its unused (camera_id, seq) index (0027_drop_feed_entry_camera_index.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-12-06T00:00:27:000000"
VERSION = "1.38.0"
DESCRIPTION = "feed_entry_camera_idx dropped (no query reads feed entries by camera)"


async def forwards() -> MigrationManager:
    """Apply 0027_drop_feed_entry_camera_index.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0027_drop_feed_entry_camera_index.sql"
    )

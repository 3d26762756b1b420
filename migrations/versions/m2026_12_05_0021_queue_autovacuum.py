"""Autovacuum settings of the feed queue (0021_queue_autovacuum.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-12-05T00:00:21:000000"
VERSION = "1.38.0"
DESCRIPTION = "autovacuum thresholds of the feed queue by dead rows, not by table size"


async def forwards() -> MigrationManager:
    """Apply 0021_queue_autovacuum.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0021_queue_autovacuum.sql"
    )

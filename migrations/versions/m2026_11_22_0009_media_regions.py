"""Media regions: every known region per stored image, and the hub's scan state."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:09:000000"
VERSION = "1.38.0"
DESCRIPTION = "media regions and hub scan state"


async def forwards() -> MigrationManager:
    """Apply 0009_media_regions.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0009_media_regions.sql"
    )

"""media_region without a primary key (no query reads a region by id) (0030_*.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-12-06T00:00:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "media_region without a primary key (no query reads a region by id)"


async def forwards() -> MigrationManager:
    """Apply 0030_media_region_without_key.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0030_media_region_without_key.sql"
    )

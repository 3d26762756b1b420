"""Camera registry: cameras belong to a node and lie in a jurisdiction."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:10:000000"
VERSION = "1.38.0"
DESCRIPTION = "camera registry"


async def forwards() -> MigrationManager:
    """Apply 0010_cameras.sql."""
    return sql_migration(migration_id=ID, description=DESCRIPTION, sql_file="0010_cameras.sql")

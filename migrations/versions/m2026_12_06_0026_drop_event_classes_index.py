"""detection_event loses its unused GIN index on classes (0026_drop_event_classes_index.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-12-06T00:00:26:000000"
VERSION = "1.38.0"
DESCRIPTION = "detection_event_classes_idx dropped (no query reads events by classes)"


async def forwards() -> MigrationManager:
    """Apply 0026_drop_event_classes_index.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0026_drop_event_classes_index.sql"
    )

"""Due rows found per agency only: drop the global due index (0023_per_agency_due.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-12-05T00:00:23:000000"
VERSION = "1.38.0"
DESCRIPTION = "due rows found per agency only: drop the global due index"


async def forwards() -> MigrationManager:
    """Apply 0023_per_agency_due.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0023_per_agency_due.sql"
    )

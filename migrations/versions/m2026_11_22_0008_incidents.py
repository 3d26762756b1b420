"""Incidents: cases, their timeline and linked events."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:08:000000"
VERSION = "1.38.0"
DESCRIPTION = "incidents, notes and linked events"


async def forwards() -> MigrationManager:
    """Apply 0008_incidents.sql."""
    return sql_migration(migration_id=ID, description=DESCRIPTION, sql_file="0008_incidents.sql")

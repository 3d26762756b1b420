"""Batched delivery: the per-agency due index and each delivery's trace."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:12:000000"
VERSION = "1.38.0"
DESCRIPTION = "per-agency due index and delivery traceparent"


async def forwards() -> MigrationManager:
    """Apply 0012_delivery_batches.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0012_delivery_batches.sql"
    )

"""Ordered delivery: `agency.ordering` and the ledger's order key (0017_ordered_delivery.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:17:000000"
VERSION = "1.38.0"
DESCRIPTION = "ordered delivery per agency or camera"


async def forwards() -> MigrationManager:
    """Apply 0017_ordered_delivery.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0017_ordered_delivery.sql"
    )

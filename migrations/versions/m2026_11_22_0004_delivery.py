"""Delivery: agency subscriptions, attempt log, ledger columns."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:04:000000"
VERSION = "1.38.0"
DESCRIPTION = "delivery ledger and attempts"


async def forwards() -> MigrationManager:
    """Apply 0004_delivery.sql."""
    return sql_migration(migration_id=ID, description=DESCRIPTION, sql_file="0004_delivery.sql")

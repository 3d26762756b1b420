"""Feed offers: per-audience feed positions, coarse release inputs on feed entries."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:15:000000"
VERSION = "1.38.0"
DESCRIPTION = "feed audiences and offers"


async def forwards() -> MigrationManager:
    """Apply 0015_feed_offers.sql."""
    return sql_migration(migration_id=ID, description=DESCRIPTION, sql_file="0015_feed_offers.sql")

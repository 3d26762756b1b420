"""feed_offer without its foreign key to feed_entry (0025_feed_offer_without_fk.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-12-05T00:00:25:000000"
VERSION = "1.38.0"
DESCRIPTION = "feed_offer without its foreign key to feed_entry"


async def forwards() -> MigrationManager:
    """Apply 0025_feed_offer_without_fk.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0025_feed_offer_without_fk.sql"
    )

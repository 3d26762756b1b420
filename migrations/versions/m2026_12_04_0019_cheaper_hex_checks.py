"""Hex checks of media regions and PII subjects without a regex (0019_cheaper_hex_checks.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-12-04T00:00:19:000000"
VERSION = "1.38.0"
DESCRIPTION = "hex checks of media regions and PII subjects without a regex"


async def forwards() -> MigrationManager:
    """Apply 0019_cheaper_hex_checks.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0019_cheaper_hex_checks.sql"
    )

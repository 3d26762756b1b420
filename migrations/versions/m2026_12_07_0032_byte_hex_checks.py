"""Hex checks over bytes, not characters (0032_*.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-12-07T00:00:32:000000"
VERSION = "1.38.0"
DESCRIPTION = "hex checks of media_region.sha256 and pii_subject_key.subject over bytes"


async def forwards() -> MigrationManager:
    """Apply 0032_byte_hex_checks.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0032_byte_hex_checks.sql"
    )

"""pii_attribute without a foreign key; pii_subject_key rows cannot be deleted (0029_*.sql)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-12-06T00:00:29:000000"
VERSION = "1.38.0"
DESCRIPTION = "pii_attribute without a foreign key; pii_subject_key rows cannot be deleted"


async def forwards() -> MigrationManager:
    """Apply 0029_vault_keys_never_deleted.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0029_vault_keys_never_deleted.sql"
    )

"""The audit log as a transparency log: lock-free appends, sealed Merkle tree, checkpoints."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:13:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit transparency log"


async def forwards() -> MigrationManager:
    """Apply 0013_audit_transparency_log.sql."""
    return sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0013_audit_transparency_log.sql"
    )

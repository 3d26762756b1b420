"""Policy: the decision log (policy_decisions) and the bundle registry (policy_bundles)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations.raw import sql_migration

ID = "2026-11-22T00:00:02:000000"
VERSION = "1.38.0"
DESCRIPTION = "policy decisions and bundles"


async def forwards() -> MigrationManager:
    """Apply 0002_policy.sql."""
    return sql_migration(migration_id=ID, description=DESCRIPTION, sql_file="0002_policy.sql")

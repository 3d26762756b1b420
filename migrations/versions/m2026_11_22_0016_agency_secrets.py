"""Agency secrets sealed at rest and per-agency retry schedules: adds `agency.retry_schedule`
(0016_agency_secrets.sql), then seals the secret fields of existing `agency.config` rows under
the hub's current PII master key (the format of hub/delivery/secrets.py)."""

import json
from collections.abc import Callable

import asyncpg
from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

from hub.delivery.secrets import clear_paths, seal_config
from hub.retention import KeyRing, keys_for
from hub.settings import load_settings
from migrations.raw import sql_migration

ID = "2026-11-22T00:00:16:000000"
VERSION = "1.38.0"
DESCRIPTION = "agency retry schedules; seal agency secrets"

# The secret fields of the built-in adapters when this migration was written (frozen here:
# later adapters declare theirs and `hub agencies reseal` seals them).
SECRET_PATHS = {
    "rest": ("secrets[]", "oauth2.client_secret", "client_key_file"),
    "xml": ("signing_key_file",),
    "jetstream": ("password", "token"),
}


async def seal_existing() -> None:
    """Seal every clear secret field of every agency, in the migration's transaction."""
    engine = engine_finder()
    transaction = engine.current_transaction.get() if engine is not None else None
    if transaction is None:
        raise RuntimeError("migrations must run inside Piccolo's migration transaction")
    await seal_rows(transaction.connection, lambda: keys_for(load_settings()))


async def seal_rows(conn: asyncpg.Connection, load_keys: Callable[[], KeyRing]) -> int:
    """Seal the clear secret fields of every agency on `conn`; how many rows changed. No key
    is read (or created) when there is nothing to seal."""
    rows = await conn.fetch("SELECT id, adapter_kind, config FROM agency FOR UPDATE")
    pending = [
        (row["id"], SECRET_PATHS[row["adapter_kind"]], json.loads(row["config"]))
        for row in rows
        if row["adapter_kind"] in SECRET_PATHS
    ]
    pending = [item for item in pending if clear_paths(item[2], item[1])]
    if not pending:
        return 0
    keys = load_keys()
    for agency_id, paths, config in pending:
        sealed = seal_config(config, paths=paths, keys=keys, agency_id=agency_id)
        await conn.execute(
            "UPDATE agency SET config = $2::jsonb WHERE id = $1", agency_id, json.dumps(sealed)
        )
    return len(pending)


async def forwards() -> MigrationManager:
    """Add the retry schedule column, then seal the secrets already stored."""
    manager = sql_migration(
        migration_id=ID, description=DESCRIPTION, sql_file="0016_agency_secrets.sql"
    )
    manager.add_raw(seal_existing)
    return manager

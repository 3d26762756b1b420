"""Helpers for migrations written as SQL files run inside Piccolo's migration transaction."""

from collections.abc import Awaitable, Callable
from pathlib import Path

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

SQL_DIR = Path(__file__).parent / "sql"


def sql_migration(*, migration_id: str, description: str, sql_file: str) -> MigrationManager:
    """Build a migration that runs one SQL file ."""
    manager = MigrationManager(migration_id=migration_id, app_name="hub", description=description)
    manager.add_raw(_runner((SQL_DIR / sql_file).read_text(encoding="utf-8")))
    return manager


def _runner(sql: str) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        engine = engine_finder()
        transaction = engine.current_transaction.get() if engine is not None else None
        if transaction is None:
            raise RuntimeError("SQL migrations must run inside Piccolo's migration transaction")
        # `execute` without arguments uses the simple protocol, which takes many statements.
        await transaction.connection.execute(sql)

    return run

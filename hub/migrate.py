"""Apply the Piccolo migrations in `migrations/` and prepare partitions."""

import contextlib
import io
import os
from dataclasses import dataclass

from hub.ingest.partitions import PartitionReport, ensure_partitions
from hub.kit.clock import utcnow
from hub.kit.db import connect_once, ensure_database
from hub.settings import Settings


class MigrationError(Exception):
    """A migration failed; the message carries Piccolo's account of it."""


@dataclass(frozen=True, slots=True)
class MigrateReport:
    """What `migrate` did."""

    database_created: bool
    applied: list[str]
    partitions: PartitionReport


async def migrate(settings: Settings) -> MigrateReport:
    """Create the database if needed, apply pending migrations, create partitions ahead."""
    created = await ensure_database(settings.database_url)
    before = await _applied(settings.database_url)
    # Piccolo's runner finds its engine through this module, which reads the same settings.
    os.environ["PICCOLO_CONF"] = "hub.piccolo_conf"
    from piccolo.apps.migrations.commands.forwards import run_forwards  # after PICCOLO_CONF

    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        result = await run_forwards(app_name="hub")
    if not result.success:
        raise MigrationError(f"{result.message}\n{chatter.getvalue()}")
    applied = sorted(set(await _applied(settings.database_url)) - set(before))
    conn = await connect_once(settings.database_url)
    try:
        partitions = await ensure_partitions(
            conn, now=utcnow(), ahead=settings.partitions_ahead_months
        )
    finally:
        await conn.close()
    return MigrateReport(database_created=created, applied=applied, partitions=partitions)


async def _applied(url: str) -> list[str]:
    conn = await connect_once(url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('migration') IS NOT NULL")
        if not exists:
            return []
        return [
            r["name"] for r in await conn.fetch("SELECT name FROM migration WHERE app_name = 'hub'")
        ]
    finally:
        await conn.close()

"""Migration 0021 gives the feed queue autovacuum thresholds by dead rows (ADR 0026)."""

import asyncpg
import pytest

from hub.settings import Settings

pytestmark = pytest.mark.db

EXPECTED = {
    "autovacuum_vacuum_scale_factor": "0",
    "autovacuum_vacuum_threshold": "5000",
    "autovacuum_vacuum_cost_delay": "0",
}


async def test_feed_pending_is_vacuumed_by_dead_rows_not_by_size(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        options = await conn.fetchval(
            "SELECT reloptions FROM pg_class WHERE oid = 'feed_pending'::regclass"
        )
        applied = await conn.fetchval(
            "SELECT count(*) FROM migration WHERE name = '2026-12-05T00:00:21:000000'"
        )
    finally:
        await conn.close()
    assert applied == 1
    settings_found = dict(option.split("=", 1) for option in options or [])
    assert settings_found == EXPECTED

"""The migrated schema matches the Piccolo tables, and partitioning is what we expect."""

import asyncpg
import pytest

from hub.settings import Settings
from hub.tables import ALL_TABLES

pytestmark = pytest.mark.db


async def test_piccolo_tables_match_the_migrated_columns(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        for table in ALL_TABLES:
            name = table._meta.tablename
            rows = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1", name
            )
            in_db = {r["column_name"] for r in rows}
            in_piccolo = {c._meta.db_column_name for c in table._meta.columns}
            assert in_db == in_piccolo, (
                f"{name}: database {sorted(in_db)} vs Piccolo {sorted(in_piccolo)}"
            )
    finally:
        await conn.close()


async def test_detection_event_is_range_partitioned_with_a_default(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        strategy = await conn.fetchval(
            "SELECT partstrat::text FROM pg_partitioned_table "
            "WHERE partrelid = 'detection_event'::regclass"
        )
        default = await conn.fetchval(
            "SELECT partdefid::regclass::text FROM pg_partitioned_table "
            "WHERE partrelid = 'detection_event'::regclass"
        )
        key_columns = await conn.fetch(
            """SELECT a.attname FROM pg_index i JOIN pg_attribute a
               ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
               WHERE i.indrelid = 'detection_event'::regclass AND i.indisprimary"""
        )
    finally:
        await conn.close()
    assert strategy == "r"
    assert default == "detection_event_default"
    assert {r["attname"] for r in key_columns} == {"id", "captured_at"}

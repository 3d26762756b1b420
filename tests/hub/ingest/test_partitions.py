"""Monthly partitions: created ahead, and rows caught by the default partition re-homed."""

from datetime import UTC, date, datetime

import asyncpg
import pytest

from hub.ingest.partitions import ensure_partitions, month_start, partition_name
from hub.settings import Settings

pytestmark = [pytest.mark.db, pytest.mark.commits]


def test_month_arithmetic_crosses_years() -> None:
    assert month_start(date(2026, 11, 30), 2) == date(2027, 1, 1)
    assert month_start(date(2026, 1, 15), -1) == date(2025, 12, 1)
    assert partition_name(date(2027, 1, 1)) == "detection_event_y2027m01"


async def test_partitions_are_created_ahead_and_default_rows_are_moved(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        old = datetime(2019, 3, 14, 9, 26, tzinfo=UTC)  # no partition for March 2019 exists
        await conn.execute(
            """INSERT INTO detection_event (node_id, event_id, captured_at, camera_id, classes,
               max_confidence, content_sha256, payload)
               VALUES (gen_random_uuid(), gen_random_uuid(), $1, 'cam', '{person}', 0.9,
                       '\\x00', '{}')""",
            old,
        )
        assert await conn.fetchval("SELECT count(*) FROM detection_event_default") == 1
        report = await ensure_partitions(conn, now=datetime(2026, 11, 22, tzinfo=UTC), ahead=14)
        assert "detection_event_y2019m03" in report.created
        assert "detection_event_y2028m01" in report.created
        assert (report.moved_rows, report.default_rows) == (1, 0)
        where = await conn.fetchval("SELECT tableoid::regclass::text FROM detection_event")
        assert where == "detection_event_y2019m03"
        again = await ensure_partitions(conn, now=datetime(2026, 11, 22, tzinfo=UTC), ahead=14)
        assert again.created == []
    finally:
        for month in ("y2019m03", *(f"y2027m{m:02d}" for m in range(3, 13)), "y2028m01"):
            await conn.execute(f"DROP TABLE IF EXISTS detection_event_{month}")
        await conn.close()

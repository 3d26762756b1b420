"""Monthly partitions: created ahead, rows caught by the default partition re-homed, and
every instant filed under its UTC month at the edges (month ends, year ends, leap days).

Every test passes `now` in and works in years no other test uses, and drops exactly the
partitions it created, so the outcome depends neither on today's date nor on test order.
"""

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone

import asyncpg
import msgspec
import pytest

from hub.ingest.partitions import (
    PartitionStatistics,
    ensure_partitions,
    month_start,
    partition_name,
)
from hub.runtime import Services
from hub.settings import Settings

pytestmark = [pytest.mark.db, pytest.mark.commits]

_INSERT = """INSERT INTO detection_event (node_id, event_id, captured_at, camera_id, classes,
               max_confidence, content_sha256, payload)
             VALUES (gen_random_uuid(), gen_random_uuid(), $1, 'cam', '{person}', 0.9,
                     '\\x00', '{}')
             RETURNING event_id"""
_WHERE = "SELECT tableoid::regclass::text FROM detection_event WHERE event_id = $1"


@pytest.mark.parametrize(
    ("day", "offset", "expected"),
    [
        (date(2026, 11, 30), 2, date(2027, 1, 1)),
        (date(2026, 1, 15), -1, date(2025, 12, 1)),
        (date(2031, 12, 31), 1, date(2032, 1, 1)),
        (date(2032, 1, 1), -1, date(2031, 12, 1)),
        (date(2032, 2, 29), 0, date(2032, 2, 1)),
        (date(2032, 2, 29), 1, date(2032, 3, 1)),
        (date(2032, 2, 29), 12, date(2033, 2, 1)),
        (date(2031, 1, 31), 1, date(2031, 2, 1)),
        (date(2031, 6, 1), -18, date(2029, 12, 1)),
    ],
)
def test_month_arithmetic(day: date, offset: int, expected: date) -> None:
    assert month_start(day, offset) == expected


def test_partition_names_sort_like_months() -> None:
    assert partition_name(date(2027, 1, 1)) == "detection_event_y2027m01"
    assert partition_name(date(2031, 12, 1)) < partition_name(date(2032, 1, 1))


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection; afterwards every partition a test created is dropped again."""
    connection = await asyncpg.connect(settings.database_url)
    before = set(await _partitions(connection))
    try:
        yield connection
    finally:
        for name in set(await _partitions(connection)) - before:
            await connection.execute(f"DROP TABLE IF EXISTS {name}")
        await connection.close()


async def _partitions(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'detection_event'::regclass"""
    )
    return [r["relname"] for r in rows]


async def test_partitions_are_created_ahead_and_default_rows_are_moved(
    conn: asyncpg.Connection,
) -> None:
    old = datetime(2019, 3, 14, 9, 26, tzinfo=UTC)  # no partition for March 2019 exists
    event_id = await conn.fetchval(_INSERT, old)
    assert await conn.fetchval(_WHERE, event_id) == "detection_event_default"
    now = datetime(2041, 11, 22, tzinfo=UTC)
    report = await ensure_partitions(conn, now=now, ahead=14)
    assert report.created == [
        "detection_event_y2019m03",
        *(f"detection_event_y2041m{m:02d}" for m in (11, 12)),
        *(f"detection_event_y2042m{m:02d}" for m in range(1, 13)),
        "detection_event_y2043m01",
    ]
    assert (report.moved_rows, report.default_rows) == (1, 0)
    assert await conn.fetchval(_WHERE, event_id) == "detection_event_y2019m03"
    again = await ensure_partitions(conn, now=now, ahead=14)
    assert again.created == []


# Instants at the edges of months, each with the partition it must land in (UTC months).
_EDGES = [
    (datetime(2031, 1, 31, 23, 59, 59, 999999, tzinfo=UTC), "y2031m01"),
    (datetime(2031, 2, 1, 0, 0, tzinfo=UTC), "y2031m02"),
    (datetime(2031, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "y2031m12"),
    (datetime(2032, 1, 1, 0, 0, tzinfo=UTC), "y2032m01"),
    (datetime(2032, 2, 28, 23, 59, 59, tzinfo=UTC), "y2032m02"),
    (datetime(2032, 2, 29, 12, 0, tzinfo=UTC), "y2032m02"),  # leap day
    (datetime(2032, 2, 29, 23, 59, 59, 999999, tzinfo=UTC), "y2032m02"),
    (datetime(2032, 3, 1, 0, 0, tzinfo=UTC), "y2032m03"),
    # Local times are filed by their UTC instant: 01:00 on 1 March at +02:00 is still February.
    (datetime(2032, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))), "y2032m02"),
    (datetime(2031, 12, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5))), "y2032m01"),
]


@pytest.mark.parametrize("ahead_first", [True, False], ids=["created-ahead", "re-homed"])
async def test_instants_at_month_edges_land_in_their_utc_month(
    conn: asyncpg.Connection, ahead_first: bool
) -> None:
    """Either the partitions exist before the rows arrive (the clock was at the end of 2030
    and 16 months were created ahead), or the rows wait in the default partition until the
    next run re-homes them; both must put every instant in its own UTC month."""
    clock = datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC)
    if ahead_first:
        report = await ensure_partitions(conn, now=clock, ahead=15)
        assert report.created[0] == "detection_event_y2030m12"
        assert report.created[-1] == "detection_event_y2032m03"
    ids = [await conn.fetchval(_INSERT, instant) for instant, _ in _EDGES]
    if not ahead_first:
        assert {await conn.fetchval(_WHERE, i) for i in ids} == {"detection_event_default"}
        report = await ensure_partitions(conn, now=clock, ahead=0)
        assert (report.moved_rows, report.default_rows) == (len(_EDGES), 0)
    for event_id, (instant, month) in zip(ids, _EDGES, strict=True):
        assert await conn.fetchval(_WHERE, event_id) == f"detection_event_{month}", instant


@pytest.mark.parametrize(
    ("now", "first", "last"),
    [
        (datetime(2031, 1, 31, 23, 59, 59, tzinfo=UTC), "y2031m01", "y2031m03"),
        (datetime(2031, 2, 1, 0, 0, tzinfo=UTC), "y2031m02", "y2031m04"),
        (datetime(2031, 12, 31, 23, 59, 59, tzinfo=UTC), "y2031m12", "y2032m02"),
        (datetime(2032, 1, 1, 0, 0, tzinfo=UTC), "y2032m01", "y2032m03"),
        (datetime(2032, 2, 29, 23, 59, 59, tzinfo=UTC), "y2032m02", "y2032m04"),
        # A clock in another zone: 01:00 on 1 Feb at +02:00 is still January in UTC.
        (datetime(2031, 2, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))), "y2031m01", "y2031m03"),
    ],
)
async def test_months_ahead_follow_the_clock(
    conn: asyncpg.Connection, now: datetime, first: str, last: str
) -> None:
    report = await ensure_partitions(conn, now=now, ahead=2)
    assert report.created == [
        f"detection_event_{first}",
        partition_name(month_start(now.astimezone(UTC).date(), 1)),
        f"detection_event_{last}",
    ]


_LOOK_UP = """EXPLAIN (FORMAT JSON) SELECT event_id, content_sha256 FROM detection_event
              WHERE node_id = $1 AND event_id = ANY($2::uuid[])"""


def _conditions_on(plan: object, table: str) -> list[str]:
    """The index conditions a JSON plan uses to read `table` (and its bitmap's index)."""
    found: list[str] = []
    if isinstance(plan, dict):
        children = plan.get("Plans", [])
        reads = plan.get("Relation Name") == table
        bitmap = [c for c in children if c.get("Node Type") == "Bitmap Index Scan"]
        if reads:
            found += [str(n["Index Cond"]) for n in [plan, *bitmap] if "Index Cond" in n]
            found += [plan["Node Type"]]
        for child in [*children, *(v for k, v in plan.items() if k == "Plan")]:
            found += _conditions_on(child, table)
    elif isinstance(plan, list):
        for child in plan:
            found += _conditions_on(child, table)
    return found


async def test_a_new_partition_gets_statistics_once_ingest_writes_it(
    conn: asyncpg.Connection, services: Services
) -> None:
    """Without statistics the planner reads every event of the node to find a batch's ids;
    the first batch written to a month's partition gives it statistics, and the look-up
    probes the index by node and id."""
    now = datetime(2045, 3, 10, tzinfo=UTC)
    await ensure_partitions(conn, now=now, ahead=0)
    name = partition_name(month_start(now.date()))
    node = await conn.fetchval("SELECT gen_random_uuid()")
    await conn.execute(  # the name is one this test's partition run made
        f"""INSERT INTO {name} (node_id, event_id, captured_at, camera_id, classes,
                                max_confidence, content_sha256, payload)
            SELECT $1, gen_random_uuid(), $2, 'cam', '{{person}}', 0.9, '\\x00', '{{}}'
            FROM generate_series(1, 20000)""",  # noqa: S608
        node,
        now,
    )
    ids = [await conn.fetchval("SELECT gen_random_uuid()") for _ in range(100)]
    plan = msgspec.json.decode(await conn.fetchval(_LOOK_UP, node, ids))
    before = _conditions_on(plan, name)
    assert before, plan
    assert not any("event_id = ANY" in c for c in before), before  # node-wide: the slow plan

    watch = PartitionStatistics(services.db)
    await watch.written([now, now + timedelta(hours=1)])
    stats = "SELECT count(*) FROM pg_stats WHERE tablename = $1 AND attname = 'node_id'"
    assert await conn.fetchval(stats, name) == 1
    plan = msgspec.json.decode(await conn.fetchval(_LOOK_UP, node, ids))
    after = _conditions_on(plan, name)
    assert any("event_id = ANY" in c for c in after), after

    # Checked once: a later batch of the month asks nothing, even if statistics went away.
    await conn.execute(f"DROP TABLE {name}")
    await watch.written([now])

"""Monthly partitions of `detection_event`: created ahead of time, default partition kept empty.

A partition is created as a plain table, filled with any rows of its month that fell into the
default partition, then attached. ATTACH takes only a SHARE UPDATE EXCLUSIVE lock on the
parent, so ingest keeps running while this happens.
"""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg
import structlog

from hub.kit.db import Database
from hub.kit.errors import UnavailableError

PARENT = "detection_event"
DEFAULT = "detection_event_default"
PARTITION_LOCK_KEY = 0x6875625F70617274  # "hub_part"

log = structlog.get_logger("hub.ingest.partitions")


@dataclass(frozen=True, slots=True)
class PartitionReport:
    """What `ensure_partitions` did."""

    created: list[str]
    moved_rows: int
    default_rows: int


def month_start(day: date, offset: int = 0) -> date:
    """The first day of the month `offset` months after `day`'s month."""
    index = day.year * 12 + (day.month - 1) + offset
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    """e.g. detection_event_y2026m11."""
    return f"{PARENT}_y{month.year:04d}m{month.month:02d}"


async def ensure_partitions(
    conn: asyncpg.Connection, *, now: datetime, ahead: int
) -> PartitionReport:
    """Make sure this month and `ahead` months after it, plus every month that has rows in the
    default partition, have their own partition. Safe to run any number of times."""
    # One creator at a time (`hub migrate` and the worker's cron may overlap).
    await conn.execute("SELECT pg_advisory_lock($1)", PARTITION_LOCK_KEY)
    try:
        return await _ensure(conn, now=now, ahead=ahead)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", PARTITION_LOCK_KEY)


async def _ensure(conn: asyncpg.Connection, *, now: datetime, ahead: int) -> PartitionReport:
    # Months are UTC months, whatever zone the caller's clock is in.
    today = now.astimezone(UTC).date()
    wanted = {month_start(today, k) for k in range(ahead + 1)}
    wanted |= await _months_in_default(conn)
    existing = await _existing_partitions(conn)
    created: list[str] = []
    moved = 0
    for month in sorted(wanted):
        if partition_name(month) not in existing:
            moved += await _create_partition(conn, month)
            created.append(partition_name(month))
    remaining = await conn.fetchval(f"SELECT count(*) FROM {DEFAULT}")
    return PartitionReport(created=created, moved_rows=moved, default_rows=remaining)


async def _existing_partitions(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = $1::regclass""",
        PARENT,
    )
    return {row["relname"] for row in rows}


async def _months_in_default(conn: asyncpg.Connection) -> set[date]:
    rows = await conn.fetch(
        "SELECT DISTINCT date_trunc('month', captured_at AT TIME ZONE 'UTC')::date AS m "
        f"FROM {DEFAULT}"
    )
    return {row["m"] for row in rows}


async def _create_partition(conn: asyncpg.Connection, month: date) -> int:
    """Create, back-fill from the default partition and attach one month, atomically."""
    name = partition_name(month)
    low = datetime(month.year, month.month, 1, tzinfo=UTC)
    nxt = month_start(month, 1)
    high = datetime(nxt.year, nxt.month, 1, tzinfo=UTC)
    bounds = f"'{low.isoformat()}' AND captured_at < '{high.isoformat()}'"
    async with conn.transaction():
        await conn.execute(
            f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        # The CHECK lets ATTACH skip scanning the new table; dropped once attached.
        await conn.execute(
            f"ALTER TABLE {name} ADD CONSTRAINT {name}_bounds CHECK (captured_at >= {bounds})"
        )
        status = await conn.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE captured_at >= {bounds} RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        )
        await conn.execute(
            f"ALTER TABLE {PARENT} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
        )
        await conn.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_bounds")
    return int(status.split()[-1])


# Of the named partitions, those that exist and have no statistics on `node_id` yet.
_WITHOUT_STATISTICS = """
SELECT p.name FROM unnest($1::text[]) AS p(name)
WHERE to_regclass(p.name) IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_stats s
                  WHERE s.schemaname = current_schema() AND s.tablename = p.name
                    AND s.attname = 'node_id')
"""


async def analyse_unknown(conn: asyncpg.Connection, *, names: Iterable[str]) -> list[str]:
    """ANALYZE each of the named partitions that has no statistics yet; returns those."""
    rows = await conn.fetch(_WITHOUT_STATISTICS, sorted(set(names)))
    for row in rows:
        # Names come from `partition_name` and were just found in the catalogue.
        await conn.execute(f"ANALYZE {row['name']}")
    return [row["name"] for row in rows]


class PartitionStatistics:
    """Gives the partitions ingest writes planner statistics as soon as they have rows.

    Without them (a month's partition until autovacuum first visits it, a fresh database) the
    planner takes `node_id = $1` for a rare value and answers the per-batch look-ups
    (`node_id = $1 AND event_id = ANY($2)`: stored hashes, new deliveries) by reading every
    event of the node in the partition, 10,000 rows for a batch of 100 after 100 batches and
    more with each, in a generic plan every pooled connection keeps. One ANALYZE once rows are
    in (milliseconds while the partition is small) makes it one index probe per id. Checked
    once per month and process; the set of checked names only grows by a month at a time.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._checked: set[str] = set()
        self._lock = asyncio.Lock()

    async def written(self, captured: Iterable[datetime]) -> None:
        """Note capture times just committed. Never raises: statistics are an optimisation
        (autovacuum provides them too, later)."""
        times = list(captured)
        if not times:
            return
        # A batch mostly lies in one month: then its earliest and latest name it (two
        # conversions instead of one per event).
        first, last = min(times).astimezone(UTC), max(times).astimezone(UTC)
        if (first.year, first.month) == (last.year, last.month):
            months = {(first.year, first.month)}
        else:
            months = {(u.year, u.month) for u in (t.astimezone(UTC) for t in times)}
        names = {partition_name(date(year, month, 1)) for year, month in months}
        if names <= self._checked:
            return
        async with self._lock:
            names -= self._checked
            if not names:
                return
            try:
                async with self._db.transaction() as conn:
                    analysed = await analyse_unknown(conn, names=names)
            except (asyncpg.PostgresError, OSError, UnavailableError) as exc:
                log.warning("partition statistics not checked", error=repr(exc)[:200])
                return
            if analysed:
                log.info("partitions analysed", partitions=analysed)
            self._checked |= names

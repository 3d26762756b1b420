"""SQL of the retention sweep; the only module of retention that queries events and media."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from hub.ingest.partitions import PARENT

# An event is held while an active legal hold names it, covers its camera and capture time,
# or covers a track it carries.
HELD = """EXISTS (
    SELECT 1 FROM legal_hold h WHERE h.status = 'active' AND (
        e.event_id = ANY (h.event_ids)
        OR (h.track_id IS NULL AND h.camera_id = e.camera_id
            AND e.captured_at >= h.from_at AND e.captured_at < h.to_at)
        OR (h.track_id IS NOT NULL AND (h.camera_id IS NULL OR h.camera_id = e.camera_id)
            AND jsonb_path_exists(e.payload, '$.detections[*] ? (@.track_id == $t)',
                                  jsonb_build_object('t', h.track_id)))))"""

# Rows of one cutoff group, oldest first, after a keyset position, never held ones.
_EXPIRED = f"""
SELECT e.id, e.captured_at FROM detection_event e
WHERE e.captured_at < $1 AND e.camera_id = ANY ($2::text[])
  AND (e.captured_at, e.id) > ($3::timestamptz, $4::bigint)
  AND NOT {HELD}
ORDER BY e.captured_at, e.id
LIMIT $5
"""

_DELETE_EVENTS = f"""
WITH doomed AS ({_EXPIRED}),
gone AS (
    DELETE FROM detection_event d USING doomed
    WHERE d.id = doomed.id AND d.captured_at = doomed.captured_at
    RETURNING d.id, d.captured_at),
feed AS (
    DELETE FROM feed_entry f USING gone
    WHERE f.event_pk = gone.id AND f.captured_at = gone.captured_at
    RETURNING f.seq),
offers AS (  -- no foreign key deletes them (migration 0025)
    DELETE FROM feed_offer o USING feed WHERE o.seq = feed.seq),
pending AS (
    DELETE FROM feed_pending p USING gone
    WHERE p.event_pk = gone.id AND p.captured_at = gone.captured_at),
vault AS (
    DELETE FROM pii_attribute a USING gone
    WHERE a.event_pk = gone.id AND a.captured_at = gone.captured_at)
SELECT count(*) AS n, max(captured_at) AS last_at,
       (array_agg(id ORDER BY captured_at DESC, id DESC))[1] AS last_id
FROM gone
"""

_COUNT_EVENTS = f"""
SELECT count(*) FROM detection_event e
WHERE e.captured_at < $1 AND e.camera_id = ANY ($2::text[]) AND NOT {HELD}
"""

_STRIP_ATTRIBUTES = """jsonb_set(d.payload - 'pii_ref', '{detections}', (
    SELECT coalesce(jsonb_agg(x.det - 'attributes' ORDER BY x.ord), '[]'::jsonb)
    FROM jsonb_array_elements(d.payload -> 'detections') WITH ORDINALITY AS x(det, ord)))"""

_HAS_PII = (
    "(jsonb_path_exists(e.payload, '$.detections[*].attributes.*') OR EXISTS ("
    "SELECT 1 FROM pii_attribute a WHERE a.event_pk = e.id AND a.captured_at = e.captured_at))"
)

_SCRUB_PII = f"""
WITH candidates AS (
    SELECT e.id, e.captured_at, {_HAS_PII} AS has_pii FROM detection_event e
    WHERE e.captured_at < $1 AND e.camera_id = ANY ($2::text[])
      AND (e.captured_at, e.id) > ($3::timestamptz, $4::bigint)
      AND NOT {HELD}
    ORDER BY e.captured_at, e.id
    LIMIT $5),
scrubbed AS (
    UPDATE detection_event d SET payload = {_STRIP_ATTRIBUTES}
    FROM candidates c
    WHERE c.has_pii AND d.id = c.id AND d.captured_at = c.captured_at
    RETURNING d.id, d.captured_at),
vault AS (
    DELETE FROM pii_attribute a USING candidates c
    WHERE c.has_pii AND a.event_pk = c.id AND a.captured_at = c.captured_at)
SELECT (SELECT count(*) FROM scrubbed) AS n, count(*) AS seen, max(captured_at) AS last_at,
       (array_agg(id ORDER BY captured_at DESC, id DESC))[1] AS last_id
FROM candidates
"""

_COUNT_PII = f"""
SELECT count(*) FROM detection_event e
WHERE e.captured_at < $1 AND e.camera_id = ANY ($2::text[]) AND {_HAS_PII} AND NOT {HELD}
"""

# A snapshot is still needed while an event referencing it is within its camera's snapshot
# retention or held; one nobody references waits out the longest snapshot retention (its
# event may not have arrived yet).
_MEDIA_EXPIRED = f"""
SELECT m.sha256, m.storage_path FROM media_object m
WHERE m.created_at < $1
  AND NOT EXISTS (
      SELECT 1 FROM detection_event e
      WHERE e.media_sha256 @> ARRAY[m.sha256]
        AND (e.captured_at >= coalesce(
                 (SELECT c.cutoff FROM unnest($2::text[], $3::timestamptz[]) AS c(camera, cutoff)
                  WHERE c.camera = e.camera_id), '-infinity')
             OR {HELD}))
  AND (m.created_at < $4 OR EXISTS (
      SELECT 1 FROM detection_event e WHERE e.media_sha256 @> ARRAY[m.sha256]))
ORDER BY m.created_at
LIMIT $5
"""


async def distinct_cameras(conn: asyncpg.Connection) -> list[str]:
    """Every camera with stored events (a skip scan of the camera index)."""
    rows = await conn.fetch(
        """WITH RECURSIVE cams AS (
               (SELECT camera_id FROM detection_event ORDER BY camera_id LIMIT 1)
               UNION ALL
               SELECT (SELECT e.camera_id FROM detection_event e WHERE e.camera_id > cams.camera_id
                       ORDER BY e.camera_id LIMIT 1)
               FROM cams WHERE cams.camera_id IS NOT NULL)
           SELECT camera_id FROM cams WHERE camera_id IS NOT NULL"""
    )
    return [row["camera_id"] for row in rows]


async def active_agencies(conn: asyncpg.Connection) -> list[tuple[str, list[str]]]:
    """Registered agencies (name, subscribed cameras; empty = every camera)."""
    rows = await conn.fetch("SELECT name, sub_cameras FROM agency WHERE status <> 'disabled'")
    return [(row["name"], list(row["sub_cameras"])) for row in rows]


async def event_partitions(conn: asyncpg.Connection) -> list[str]:
    """Names of the attached partitions of detection_event."""
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = $1::regclass ORDER BY c.relname""",
        PARENT,
    )
    return [row["relname"] for row in rows]


async def partition_is_held(
    conn: asyncpg.Connection, name: str, *, low: datetime, high: datetime
) -> bool:
    """Whether an active hold covers the month's range or any row of the partition."""
    ranged = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM legal_hold WHERE status = 'active' AND track_id IS NULL
                          AND from_at < $2 AND to_at > $1)""",
        low,
        high,
    )
    if ranged:
        return True
    held: bool = await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {name} e WHERE {HELD})")
    return held


async def count_rows(conn: asyncpg.Connection, name: str) -> int:
    """Rows in one partition."""
    return int(await conn.fetchval(f"SELECT count(*) FROM {name}"))


async def drop_partition(
    conn: asyncpg.Connection, name: str, *, low: datetime, high: datetime
) -> None:
    """Detach and drop one partition, and the feed and vault rows of its events.

    Plain DETACH (CONCURRENTLY is not allowed next to a default partition) takes a short
    ACCESS EXCLUSIVE lock on the parent; lock_timeout stops it from queueing ingest behind
    a long reader, and the caller simply retries on the next sweep.
    """
    # Dependent rows first: the parent's ACCESS EXCLUSIVE lock is then held only for the
    # detach, the drop and the commit, not for these scans.
    # Offers by their positions, before the positions go (no foreign key does it, 0025).
    await conn.execute(
        """DELETE FROM feed_offer WHERE seq IN (
               SELECT seq FROM feed_entry WHERE captured_at >= $1 AND captured_at < $2)""",
        low,
        high,
    )
    for table in ("feed_entry", "feed_pending", "pii_attribute"):
        await conn.execute(
            f"DELETE FROM {table} WHERE captured_at >= $1 AND captured_at < $2", low, high
        )
    await conn.execute("SET LOCAL lock_timeout = '2s'")
    await conn.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {name}")
    await conn.execute(f"DROP TABLE {name}")


async def delete_events(
    conn: asyncpg.Connection,
    *,
    cutoff: datetime,
    cameras: Sequence[str],
    after: tuple[datetime, int],
    limit: int,
) -> tuple[int, tuple[datetime, int] | None]:
    """Delete one batch of expired, unheld events; returns (count, keyset of the last row)."""
    row = await conn.fetchrow(_DELETE_EVENTS, cutoff, list(cameras), after[0], after[1], limit)
    return _batch(row, "n")


async def scrub_pii(
    conn: asyncpg.Connection,
    *,
    cutoff: datetime,
    cameras: Sequence[str],
    after: tuple[datetime, int],
    limit: int,
) -> tuple[int, tuple[datetime, int] | None]:
    """Strip PII attributes from one batch of events past PII retention and drop their vault
    rows; returns (events scrubbed, keyset of the last row looked at)."""
    row = await conn.fetchrow(_SCRUB_PII, cutoff, list(cameras), after[0], after[1], limit)
    count, _ = _batch(row, "n")
    _, last = _batch(row, "seen")
    return count, last


def _batch(row: Any, column: str) -> tuple[int, tuple[datetime, int] | None]:
    count = int(row[column])
    if row["last_at"] is None:
        return count, None
    return count, (row["last_at"], int(row["last_id"]))


async def count_events(
    conn: asyncpg.Connection, *, cutoff: datetime, cameras: Sequence[str]
) -> int:
    """Expired, unheld events of one cutoff group (dry run)."""
    return int(await conn.fetchval(_COUNT_EVENTS, cutoff, list(cameras)))


async def count_pii(conn: asyncpg.Connection, *, cutoff: datetime, cameras: Sequence[str]) -> int:
    """Events past PII retention still carrying PII (dry run)."""
    return int(await conn.fetchval(_COUNT_PII, cutoff, list(cameras)))


async def expired_media(
    conn: asyncpg.Connection,
    *,
    created_before: datetime,
    cutoffs: dict[str, datetime],
    orphan_before: datetime,
    limit: int,
    lock: bool,
) -> list[tuple[str, str]]:
    """Media objects no event needs any more: (sha256, storage path)."""
    sql = _MEDIA_EXPIRED + (" FOR UPDATE OF m SKIP LOCKED" if lock else "")
    cameras = list(cutoffs)
    rows = await conn.fetch(
        sql, created_before, cameras, [cutoffs[c] for c in cameras], orphan_before, limit
    )
    return [(row["sha256"], row["storage_path"]) for row in rows]


async def delete_media_rows(conn: asyncpg.Connection, shas: Sequence[str]) -> int:
    """Forget media objects whose files are gone."""
    status: str = await conn.execute(
        "DELETE FROM media_object WHERE sha256 = ANY ($1::text[])", list(shas)
    )
    return int(status.split()[-1])


async def delete_deliveries(
    conn: asyncpg.Connection, *, cutoff: datetime, limit: int, dry_run: bool
) -> int:
    """Finished deliveries (and their attempts, by cascade) last touched before the cutoff,
    unless their event is held."""
    where = f"""d.status IN ('delivered', 'dead', 'withheld', 'cancelled') AND d.updated_at < $1
        AND NOT EXISTS (SELECT 1 FROM detection_event e
                        WHERE e.id = d.event_pk AND e.captured_at = d.event_captured_at
                          AND {HELD})"""
    if dry_run:
        return int(await conn.fetchval(f"SELECT count(*) FROM delivery d WHERE {where}", cutoff))
    status: str = await conn.execute(
        f"""DELETE FROM delivery WHERE id IN (
                SELECT d.id FROM delivery d WHERE {where} LIMIT $2)""",
        cutoff,
        limit,
    )
    return int(status.split()[-1])


async def delete_decisions(
    conn: asyncpg.Connection, *, cutoff: datetime, limit: int, dry_run: bool
) -> int:
    """Policy decision records older than the cutoff."""
    if dry_run:
        return int(
            await conn.fetchval("SELECT count(*) FROM policy_decisions WHERE at < $1", cutoff)
        )
    status: str = await conn.execute(
        """DELETE FROM policy_decisions WHERE decision_id IN (
               SELECT decision_id FROM policy_decisions WHERE at < $1 LIMIT $2)""",
        cutoff,
        limit,
    )
    return int(status.split()[-1])

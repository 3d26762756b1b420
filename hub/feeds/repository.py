"""SQL of feeds: sequencing, pages, ranges for the live feed, events naming an image, acks."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from hub.feeds.schemas import FeedFilters

# One sequencer at a time: positions are handed out in the order sequencer transactions
# commit (see migrations/sql/0006_feeds.sql for why that makes pages gap-free).
SEQUENCER_LOCK_KEY = 0x6875625F66656564  # "hub_feed"
SEQUENCE_BATCH = 5_000

_SEQUENCE = """
WITH moved AS (
    DELETE FROM feed_pending p
    USING (SELECT event_pk, captured_at FROM feed_pending
           WHERE queued_at <= clock_timestamp() - make_interval(secs => $2)
           ORDER BY queued_at LIMIT $1) AS pick
    WHERE p.event_pk = pick.event_pk AND p.captured_at = pick.captured_at
    RETURNING p.event_pk, p.captured_at
)
INSERT INTO feed_entry (seq, event_pk, captured_at, camera_id, classes, media_sha256)
SELECT nextval('feed_entry_seq'), e.id, e.captured_at, e.camera_id, e.classes, e.media_sha256
FROM (SELECT e.id, e.captured_at, e.camera_id, e.classes, e.media_sha256
      FROM moved m
      JOIN detection_event e ON e.id = m.event_pk AND e.captured_at = m.captured_at
      WHERE e.disposition = 'accepted'
      ORDER BY e.id) AS e
ON CONFLICT (event_pk, captured_at) DO NOTHING
RETURNING seq
"""

_PAGE = """
SELECT f.seq, e.event_id, e.camera_id, e.classes, e.captured_at, e.payload::text AS payload
FROM feed_entry f
JOIN detection_event e ON e.id = f.event_pk AND e.captured_at = f.captured_at
WHERE f.seq > $1 AND f.seq <= $2
  AND e.disposition = 'accepted'
  AND ($3::timestamptz IS NULL OR f.captured_at >= $3)
  AND ($4::timestamptz IS NULL OR f.captured_at < $4)
  AND (cardinality($5::text[]) = 0 OR f.classes && $5::text[])
  AND (cardinality($6::text[]) = 0 OR f.camera_id = ANY ($6::text[]))
ORDER BY f.seq
LIMIT $7
"""

MAX_SEQ = 2**63 - 1


class FeedRow(msgspec.Struct, frozen=True, kw_only=True):
    """An event at its feed position, with the stored (unredacted) payload as JSON text."""

    seq: int
    event_id: UUID
    camera_id: str
    classes: list[str]
    captured_at: datetime
    payload: str


async def has_pending(conn: asyncpg.Connection, *, older_than_seconds: float) -> bool:
    """Whether committed events wait for a position for longer than the given time."""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM feed_pending
               WHERE queued_at <= clock_timestamp() - make_interval(secs => $1))""",
            older_than_seconds,
        )
    )


async def sequence_pending(
    conn: asyncpg.Connection, *, older_than_seconds: float = 0.0, batch: int = SEQUENCE_BATCH
) -> list[int]:
    """Give committed pending events their positions, in the caller's transaction, under the
    sequencer lock (held until that transaction ends); returns the positions assigned."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", SEQUENCER_LOCK_KEY)
    assigned: list[int] = []
    while True:
        rows = await conn.fetch(_SEQUENCE, batch, older_than_seconds)
        assigned.extend(row["seq"] for row in rows)
        if len(rows) < batch:
            return assigned


async def select_page(
    conn: asyncpg.Connection,
    *,
    after: int,
    filters: FeedFilters,
    limit: int,
    through: int = MAX_SEQ,
) -> list[FeedRow]:
    """Up to `limit` events after position `after` (and at most `through`), in order."""
    rows = await conn.fetch(
        _PAGE,
        after,
        through,
        filters.since,
        filters.until,
        filters.classes,
        filters.cameras,
        limit,
    )
    return [_row(r) for r in rows]


async def last_seq(conn: asyncpg.Connection) -> int:
    """The highest position handed out so far (0 before any)."""
    return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM feed_entry"))


async def select_media_events(
    conn: asyncpg.Connection, *, sha256: str, limit: int
) -> list[FeedRow]:
    """One feed event (the newest) per distinct release input (camera, jurisdiction, set of
    labels: all a release rule may consult) among those that reference an image; up to
    `limit + 1`, so the caller can tell that more exist than it will decide."""
    rows = await conn.fetch(
        """SELECT seq, event_id, camera_id, classes, captured_at, payload FROM (
               SELECT DISTINCT ON (e.camera_id, e.classes, e.payload ->> 'jurisdiction')
                      f.seq, e.event_id, e.camera_id, e.classes, e.captured_at,
                      e.payload::text AS payload
               FROM feed_entry f
               JOIN detection_event e ON e.id = f.event_pk AND e.captured_at = f.captured_at
               WHERE f.media_sha256 @> ARRAY[$1]::text[] AND e.disposition = 'accepted'
               ORDER BY e.camera_id, e.classes, e.payload ->> 'jurisdiction', f.seq DESC
           ) AS candidates
           ORDER BY seq DESC
           LIMIT $2 + 1""",
        sha256,
        limit,
    )
    return [_row(r) for r in rows]


async def insert_acks(
    conn: asyncpg.Connection, *, agency: str, subject: str, seqs: Sequence[int]
) -> int:
    """Record acknowledged positions (repeats change nothing); returns how many were new."""
    rows = await conn.fetch(
        """INSERT INTO feed_ack (agency, seq, subject)
           SELECT $1, s, $2 FROM unnest($3::bigint[]) AS s
           ON CONFLICT (agency, seq) DO NOTHING
           RETURNING seq""",
        agency,
        subject,
        sorted(set(seqs)),
    )
    return len(rows)


def _row(r: asyncpg.Record) -> FeedRow:
    return FeedRow(
        seq=r["seq"],
        event_id=r["event_id"],
        camera_id=r["camera_id"],
        classes=list(r["classes"]),
        captured_at=r["captured_at"],
        payload=r["payload"],
    )

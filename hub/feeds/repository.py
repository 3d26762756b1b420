"""SQL of feeds: sequencing, pages, audiences and their offers, ranges for the live feed,
events naming an image, acks."""

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import asyncpg
import msgspec

from hub.delivery.schemas import Subscription
from hub.feeds.schemas import FeedFilters
from hub.retention import Sealed, sealed_of_event

# One sequencer at a time: positions are handed out in the order sequencer transactions
# commit (see migrations/sql/0006_feeds.sql for why that makes pages gap-free).
SEQUENCER_LOCK_KEY = 0x6875625F66656564  # "hub_feed"
SEQUENCE_BATCH = 5_000

# Answers one row, not a row per position: decoding ~250 positions a run was ~4 % of an
# ingesting API worker's CPU, and the notice needs only the first and the last.
#
# The queue's rows carry the columns feed_entry copies (ingest's trigger, migration 0031):
# joining each event back to detection_event was a third of a run's CPU (ADR 0037). A row
# queued before that migration has no camera_id and is still joined back to its event, which
# must still be accepted; in the common case that branch has no rows to look up.
_SEQUENCE = """
WITH moved AS (
    DELETE FROM feed_pending
    WHERE ctid = ANY (ARRAY(SELECT ctid FROM feed_pending
                            WHERE queued_at <= clock_timestamp() - make_interval(secs => $2)
                            ORDER BY queued_at LIMIT $1))
    RETURNING event_pk, captured_at, camera_id, classes, media_sha256, jurisdiction,
              max_confidence
), placed AS (
    INSERT INTO feed_entry
        (seq, event_pk, captured_at, camera_id, classes, media_sha256, jurisdiction,
         max_confidence)
    SELECT nextval('feed_entry_seq'), e.*
    FROM (SELECT event_pk, captured_at, camera_id, classes, media_sha256, jurisdiction,
                 max_confidence
          FROM moved WHERE camera_id IS NOT NULL
          UNION ALL
          SELECT e.id, e.captured_at, e.camera_id, e.classes, e.media_sha256,
                 e.payload ->> 'jurisdiction', e.max_confidence
          FROM moved m
          JOIN detection_event e ON e.id = m.event_pk AND e.captured_at = m.captured_at
          WHERE m.camera_id IS NULL AND e.disposition = 'accepted'
          ORDER BY event_pk) AS e
    ON CONFLICT (event_pk, captured_at) DO NOTHING
    RETURNING seq
)
SELECT (SELECT count(*) FROM moved) AS moved, count(*) AS placed, min(seq) AS first,
       max(seq) AS last
FROM placed
"""

# Every query of feed rows reads each event's PII vault rows with it (`sealed`, ADR 0030):
# hydrating a row then needs no statement of its own.
_SEALED = sealed_of_event("f.event_pk", "f.captured_at")

MAX_SEQ = 2**63 - 1


class FeedRow(msgspec.Struct, frozen=True, kw_only=True):
    """An event at its feed position, with the stored (unredacted) payload as JSON text,
    where its row is (`event_pk`, `captured_at`: its key in the tables that refer to it) and
    its PII vault rows (`sealed`, read by the same statement)."""

    seq: int
    event_pk: int
    event_id: UUID
    camera_id: str
    classes: list[str]
    captured_at: datetime
    payload: str
    sealed: list[Sealed]


async def has_pending(
    conn: asyncpg.Connection | asyncpg.Pool, *, older_than_seconds: float
) -> bool:
    """Whether committed events wait for a position for longer than the given time."""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM feed_pending
               WHERE queued_at <= clock_timestamp() - make_interval(secs => $1))""",
            older_than_seconds,
        )
    )


class Sequenced(NamedTuple):
    """The positions one sequencing gave: how many, the first and the last (0 when none).
    They were handed out in one order under the sequencer lock, so every position between
    `first` and `last` that has an entry is one of them."""

    positions: int
    first: int
    last: int

    def add(self, positions: int, first: int | None, last: int | None) -> "Sequenced":
        """These positions and `positions` more from `first` to `last` (given after them)."""
        if not positions or first is None or last is None:
            return self
        return Sequenced(self.positions + positions, self.first or first, last)


async def sequence_pending(
    conn: asyncpg.Connection, *, older_than_seconds: float = 0.0, batch: int = SEQUENCE_BATCH
) -> Sequenced:
    """Give committed pending events their positions, in the caller's transaction, under the
    sequencer lock (held until that transaction ends); what positions were assigned."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", SEQUENCER_LOCK_KEY)
    assigned = Sequenced(0, 0, 0)
    while True:
        moved, placed, first, last = await conn.fetchrow(_SEQUENCE, batch, older_than_seconds)
        assigned = assigned.add(placed, first, last)
        if moved < batch:
            return assigned


async def vacuum_pending(conn: asyncpg.Connection) -> None:
    """Vacuum the sequencing queue (outside any transaction; skipped while another vacuum,
    autovacuum's say, holds it). Its rows live for milliseconds, so the dead ones soon
    outnumber the live ones many times; their index entries stay until a vacuum, and each
    sequencing run's ordered scan starts among them."""
    await conn.execute("VACUUM (SKIP_LOCKED) feed_pending")


_LIVE = f"""
SELECT f.seq, f.event_pk, e.event_id, f.camera_id, f.classes, e.captured_at, f.max_confidence,
       e.payload::text AS payload, {_SEALED} AS sealed
FROM feed_entry f
JOIN detection_event e ON e.id = f.event_pk AND e.captured_at = f.captured_at
WHERE f.seq > $1 AND e.disposition = 'accepted'
ORDER BY f.seq
LIMIT $2
"""


class LiveRow(FeedRow, frozen=True, kw_only=True):
    """A feed row with what an agency's subscription looks at besides camera and classes
    (the live feed matches subscriptions in Python, as offers do in SQL)."""

    max_confidence: float


async def select_live(conn: asyncpg.Connection, *, after: int, limit: int) -> list[LiveRow]:
    """Up to `limit` events after position `after`, in order, for the live fan-out."""
    rows = await conn.fetch(_LIVE, after, limit)
    return [
        LiveRow(
            seq=r["seq"],
            event_pk=r["event_pk"],
            event_id=r["event_id"],
            camera_id=r["camera_id"],
            classes=list(r["classes"]),
            captured_at=r["captured_at"],
            max_confidence=r["max_confidence"],
            payload=r["payload"],
            sealed=r["sealed"] or [],
        )
        for r in rows
    ]


async def last_seq(conn: asyncpg.Connection) -> int:
    """The highest position handed out so far (0 before any)."""
    return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM feed_entry"))


async def select_events_at(
    conn: asyncpg.Connection | asyncpg.Pool, seqs: Sequence[int]
) -> dict[int, tuple[UUID, datetime]]:
    """The events at these positions that are still kept: position -> (event id, capture
    time)."""
    rows = await conn.fetch(
        """SELECT f.seq, e.event_id, e.captured_at FROM feed_entry f
           JOIN detection_event e ON e.id = f.event_pk AND e.captured_at = f.captured_at
           WHERE f.seq = ANY ($1::bigint[])""",
        sorted(set(seqs)),
    )
    return {r["seq"]: (r["event_id"], r["captured_at"]) for r in rows}


async def select_media_events(
    conn: asyncpg.Connection, *, sha256: str, limit: int
) -> list[FeedRow]:
    """One feed event (the newest) per distinct release input (camera, jurisdiction, set of
    labels: all a release rule may consult) among those that reference an image; up to
    `limit + 1`, so the caller can tell that more exist than it will decide."""
    rows = await conn.fetch(
        f"""SELECT f.seq, f.event_pk, f.event_id, f.camera_id, f.classes, f.captured_at,
                   f.payload, {_SEALED} AS sealed FROM (
               SELECT DISTINCT ON (e.camera_id, e.classes, e.payload ->> 'jurisdiction')
                      f.seq, f.event_pk, e.event_id, e.camera_id, e.classes, e.captured_at,
                      e.payload::text AS payload
               FROM feed_entry f
               JOIN detection_event e ON e.id = f.event_pk AND e.captured_at = f.captured_at
               WHERE e.media_sha256 @> ARRAY[$1]::text[] AND e.disposition = 'accepted'
               ORDER BY e.camera_id, e.classes, e.payload ->> 'jurisdiction', f.seq DESC
           ) AS f
           ORDER BY f.seq DESC
           LIMIT $2 + 1""",
        sha256,
        limit,
    )
    return [_row(r) for r in rows]


class Audience(msgspec.Struct, frozen=True, kw_only=True):
    """A reader audience's offer state: offers exist for every position in (lo, hi], judged
    under bundle `revision`; `touch_due` when its use was last recorded over an hour ago."""

    id: int
    revision: str
    lo: int
    hi: int
    touch_due: bool = False


# The revision of an audience being pruned: no bundle has it, so a reader refills it first.
PRUNED_REVISION = "(pruned)"


class ReleaseKey(msgspec.Struct, frozen=True, kw_only=True):
    """One distinct coarse release input among feed positions (`key` is its SQL form)."""

    key: str
    camera_id: str
    jurisdiction: str | None
    classes: list[str]


_AUDIENCE_COLUMNS = "id, revision, lo, hi, used_at < now() - interval '1 hour' AS touch_due"
# The coarse release input of a feed entry, as one comparable text value.
# A position's coarse release input as one text, compared in SQL only. "|" and "," occur in
# no camera id, jurisdiction or label (the contract's and the registry's patterns), and a
# jurisdiction is never empty, so no two inputs share a key. Four times cheaper per row than
# the jsonb_build_array(...)::text it replaced; a fill computes it twice per position.
_KEY_SQL = (
    "f.camera_id || '|' || coalesce(f.jurisdiction, '') || '|' || array_to_string(f.classes, ',')"
)

# The audience, the feed's head and the audience's offered rows after a cursor, in one
# statement, so in one snapshot without a transaction
# (range and offers commit together: a snapshot that shows the range shows every offer in
# it). Offers first, in order, then one probe per offer into the entry and the event. The
# LATERAL subqueries are fenced (OFFSET 0) because the planner otherwise joins every feed
# entry with every event before it looks at the offers (a hash join: 350 ms for a page of a
# 100,000-event feed instead of about 1 ms); it does not carry the seq range from the offer
# to the entry. A row per offer (the audience repeated), or one row without an offer. Each
# event's PII vault rows come with it (`sealed`, as in every feed query): a second statement
# by the rows' ids (its round trip and its arrays of ids) was ~8 % of a page's API CPU.
_LOOK_OFFERED = f"""
SELECT h.last, a.id, a.revision, a.lo, a.hi, a.touch_due,
       r.seq, r.event_pk, r.event_id, r.camera_id, r.classes, r.captured_at, r.payload,
       {sealed_of_event("r.event_pk", "r.captured_at")} AS sealed
FROM (SELECT coalesce(max(seq), 0) AS last FROM feed_entry) AS h
LEFT JOIN (SELECT {_AUDIENCE_COLUMNS} FROM feed_audience WHERE key = $1) AS a ON true
LEFT JOIN LATERAL (
    SELECT f.seq, f.event_pk, e.event_id, e.camera_id, e.classes, e.captured_at,
           e.payload::text AS payload
    FROM feed_offer o
    CROSS JOIN LATERAL (
        SELECT f.seq, f.event_pk, f.captured_at FROM feed_entry f
        WHERE f.seq = o.seq
          AND ($5::timestamptz IS NULL OR f.captured_at >= $5)
          AND ($6::timestamptz IS NULL OR f.captured_at < $6)
          AND (cardinality($7::text[]) = 0 OR f.classes && $7::text[])
          AND (cardinality($8::text[]) = 0 OR f.camera_id = ANY ($8::text[]))
        OFFSET 0
    ) AS f
    CROSS JOIN LATERAL (
        SELECT e.event_id, e.camera_id, e.classes, e.captured_at, e.payload
        FROM detection_event e
        WHERE e.id = f.event_pk AND e.captured_at = f.captured_at
          AND e.disposition = 'accepted'
        OFFSET 0
    ) AS e
    WHERE o.audience_id = a.id AND a.revision = $2 AND a.lo <= $3
      AND o.seq > $3 AND o.seq <= least(a.hi, $4)
    ORDER BY o.seq
    LIMIT $9
) AS r ON true
ORDER BY r.seq
"""


class OfferedLook(msgspec.Struct, frozen=True, kw_only=True):
    """One snapshot of an audience: its offer state (None before its first reader), the
    feed's head and offered rows."""

    audience: Audience | None
    last: int
    rows: list[FeedRow]


_INSERT_OFFERS = f"""
INSERT INTO feed_offer (audience_id, seq)
SELECT $1, f.seq FROM feed_entry f
WHERE f.seq > $2 AND f.seq <= $3
  AND {_KEY_SQL} = ANY ($4::text[])
  AND (cardinality($5::text[]) = 0 OR f.classes && $5::text[])
  AND (cardinality($6::text[]) = 0 OR f.camera_id = ANY ($6::text[]))
  AND f.max_confidence >= $7::real
ORDER BY f.seq
ON CONFLICT DO NOTHING
"""


async def find_audience(
    conn: asyncpg.Connection | asyncpg.Pool, *, key: str
) -> tuple[Audience | None, int]:
    """An audience's offer state (None before its first reader) and the highest position
    handed out so far, in one round trip."""
    row = await conn.fetchrow(
        f"""SELECT (SELECT coalesce(max(seq), 0) FROM feed_entry) AS last, a.*
            FROM (SELECT 1) AS one
            LEFT JOIN (SELECT {_AUDIENCE_COLUMNS} FROM feed_audience WHERE key = $1) AS a
              ON true""",
        key,
    )
    last = int(row["last"])
    if row["id"] is None:
        return None, last
    audience = Audience(
        id=row["id"],
        revision=row["revision"],
        lo=row["lo"],
        hi=row["hi"],
        touch_due=row["touch_due"],
    )
    return audience, last


async def lock_audience(conn: asyncpg.Connection, *, key: str, agency: str) -> Audience:
    """An audience's state, created if new, locked until the caller's transaction ends (one
    filler per audience at a time)."""
    await conn.execute(
        "INSERT INTO feed_audience (key, agency) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        key,
        agency,
    )
    row = await conn.fetchrow(
        f"""UPDATE feed_audience SET used_at = now() WHERE key = $1
            RETURNING {_AUDIENCE_COLUMNS}""",
        key,
    )
    return Audience(**dict(row))


async def touch_audience(conn: asyncpg.Connection | asyncpg.Pool, audience: Audience) -> bool:
    """Record that the audience is read; False when it changed since it was read (pruned,
    emptied for another revision), so the caller must take the locked path instead. Done at
    most hourly per audience, and before reading offers: pruning re-checks `used_at` under
    the row lock, so it can never empty the range a reader is about to read."""
    status: str = await conn.execute(
        """UPDATE feed_audience SET used_at = now()
           WHERE id = $1 AND revision = $2 AND lo = $3 AND hi >= $4""",
        audience.id,
        audience.revision,
        audience.lo,
        audience.hi,
    )
    return status != "UPDATE 0"


async def lock_stale_audience(
    conn: asyncpg.Connection, *, idle_before: datetime
) -> tuple[int, str] | None:
    """The stalest audience to prune, locked (others' locked ones skipped): unused since
    `idle_before`, of an agency gone or disabled, or already being pruned; (id, agency)."""
    row = await conn.fetchrow(
        """SELECT a.id, a.agency FROM feed_audience a
           WHERE a.revision = $2 OR a.used_at < $1
              OR NOT EXISTS (SELECT 1 FROM agency g
                             WHERE g.name = a.agency AND g.status <> 'disabled')
           ORDER BY a.used_at LIMIT 1
           FOR UPDATE OF a SKIP LOCKED""",
        idle_before,
        PRUNED_REVISION,
    )
    return None if row is None else (row["id"], row["agency"])


async def delete_offers(conn: asyncpg.Connection, *, audience_id: int, limit: int) -> int:
    """Delete up to `limit` of an audience's offers (highest first); how many."""
    status = await conn.execute(
        """DELETE FROM feed_offer WHERE audience_id = $1 AND seq IN (
               SELECT seq FROM feed_offer WHERE audience_id = $1 ORDER BY seq DESC LIMIT $2)""",
        audience_id,
        limit,
    )
    return int(status.rsplit(" ", 1)[-1])


async def retire_audience(conn: asyncpg.Connection, audience_id: int) -> None:
    """Mark an audience as being pruned: an empty range under no bundle's revision."""
    await conn.execute(
        "UPDATE feed_audience SET revision = $2, lo = 0, hi = 0 WHERE id = $1",
        audience_id,
        PRUNED_REVISION,
    )


async def delete_audience(conn: asyncpg.Connection, audience_id: int) -> None:
    """Delete an audience (its remaining offers go with it)."""
    await conn.execute("DELETE FROM feed_audience WHERE id = $1", audience_id)


async def reset_audience(
    conn: asyncpg.Connection, *, audience_id: int, revision: str, at: int
) -> Audience:
    """Forget an audience's offers (judged under another revision); its range restarts empty
    at position `at`."""
    await conn.execute("DELETE FROM feed_offer WHERE audience_id = $1", audience_id)
    await conn.execute(
        "UPDATE feed_audience SET revision = $2, lo = $3, hi = $3 WHERE id = $1",
        audience_id,
        revision,
        at,
    )
    return Audience(id=audience_id, revision=revision, lo=at, hi=at)


async def set_range(conn: asyncpg.Connection, *, audience_id: int, lo: int, hi: int) -> None:
    """Record the range of positions the audience's offers now cover."""
    await conn.execute(
        "UPDATE feed_audience SET lo = $2, hi = $3 WHERE id = $1", audience_id, lo, hi
    )


async def chunk_end(conn: asyncpg.Connection, *, after: int, entries: int, last: int) -> int:
    """The position of the `entries`-th feed entry after `after`, or `last` when fewer
    entries lie in (after, last]."""
    end = await conn.fetchval(
        """SELECT seq FROM feed_entry WHERE seq > $1 AND seq <= $3
           ORDER BY seq OFFSET $2 - 1 LIMIT 1""",
        after,
        entries,
        last,
    )
    return last if end is None else int(end)


async def release_keys(conn: asyncpg.Connection, *, after: int, through: int) -> list[ReleaseKey]:
    """The distinct coarse release inputs among positions in (after, through]."""
    rows = await conn.fetch(
        f"""SELECT DISTINCT {_KEY_SQL} AS key, f.camera_id, f.jurisdiction, f.classes
            FROM feed_entry f WHERE f.seq > $1 AND f.seq <= $2""",
        after,
        through,
    )
    return [
        ReleaseKey(
            key=r["key"],
            camera_id=r["camera_id"],
            jurisdiction=r["jurisdiction"],
            classes=list(r["classes"]),
        )
        for r in rows
    ]


async def insert_offers(
    conn: asyncpg.Connection,
    *,
    audience_id: int,
    after: int,
    through: int,
    keys: Sequence[str],
    subscription: Subscription,
) -> int:
    """Offer the audience every position in (after, through] whose coarse release input is
    one of `keys` and that its subscription wants; returns how many were offered."""
    if not keys:
        return 0
    status = await conn.execute(
        _INSERT_OFFERS,
        audience_id,
        after,
        through,
        list(keys),
        subscription.classes,
        subscription.cameras,
        subscription.min_confidence,
    )
    return int(status.rsplit(" ", 1)[-1])


async def look_offered(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    key: str,
    revision: str,
    after: int,
    through: int,
    filters: FeedFilters,
    limit: int,
) -> OfferedLook:
    """An audience and up to `limit` of its offered events in (after, min(hi, through)], in
    order, read by one statement (one snapshot); no rows unless the audience is under
    `revision` and its range starts at or before `after`."""
    rows = await conn.fetch(
        _LOOK_OFFERED,
        key,
        revision,
        after,
        through,
        filters.since,
        filters.until,
        filters.classes,
        filters.cameras,
        limit,
    )
    head = rows[0]
    audience = None
    if head["id"] is not None:
        audience = Audience(
            id=head["id"],
            revision=head["revision"],
            lo=head["lo"],
            hi=head["hi"],
            touch_due=head["touch_due"],
        )
    return OfferedLook(
        audience=audience,
        last=int(head["last"]),
        rows=[_row(r) for r in rows if r["seq"] is not None],
    )


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
        event_pk=r["event_pk"],
        event_id=r["event_id"],
        camera_id=r["camera_id"],
        classes=list(r["classes"]),
        captured_at=r["captured_at"],
        payload=r["payload"],
        sealed=r["sealed"] or [],
    )

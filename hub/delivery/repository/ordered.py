"""SQL of FIFO agencies (ADR 0019): rows numbered in commit order after commit, and only
queue heads claimed, under a per-agency advisory lock."""

from uuid import UUID

import asyncpg

from hub.delivery.repository.ledger import Claimed, claimed_of
from hub.delivery.schemas import (
    OrderBlock,
)

_ORDER_LOCK_CLASS = 0x4F524452  # "ORDR"
_OPEN = "status IN ('pending', 'retrying', 'in_flight')"

# Number the agency's open rows that have none yet, after every number handed out before (see
# 0017_ordered_delivery.sql for why after commit, and why this order among the rows of one
# pass: their transactions' start, then capture time). nextval() runs after the sort
# (PostgreSQL evaluates volatile output columns after ORDER BY). The camera is copied from the
# event ('' when retention already removed it: such a row is cancelled unsent).
_NUMBER_OPEN = f"""
UPDATE delivery d
   SET order_seq = n.seq, camera_id = coalesce(e.camera_id, '')
  FROM (SELECT id, event_pk, event_captured_at, nextval('delivery_order_seq') AS seq
          FROM delivery
         WHERE agency_id = $1 AND order_seq IS NULL AND {_OPEN}
         ORDER BY created_at, event_captured_at, event_pk, id) n
  LEFT JOIN detection_event e ON e.id = n.event_pk AND e.captured_at = n.event_captured_at
 WHERE d.id = n.id
"""


def _queues(*, per_camera: bool, rows: str) -> str:
    """A `queue` CTE: up to `rows` rows from the front of the agency's queue, or of each
    camera's (found by a loose index scan over the camera index: one probe per camera,
    however long each queue is)."""
    if not per_camera:
        return f"""queue AS (
    SELECT id, '' AS queue, order_seq, next_attempt_at
      FROM delivery
     WHERE agency_id = $1 AND order_seq IS NOT NULL AND {_OPEN}
     ORDER BY order_seq LIMIT {rows}
)"""
    return f"""cameras AS (
    (SELECT camera_id FROM delivery
      WHERE agency_id = $1 AND order_seq IS NOT NULL AND {_OPEN}
      ORDER BY camera_id LIMIT 1)
    UNION ALL
    SELECT (SELECT d.camera_id FROM delivery d
             WHERE d.agency_id = $1 AND d.order_seq IS NOT NULL AND d.{_OPEN}
               AND d.camera_id > c.camera_id
             ORDER BY d.camera_id LIMIT 1)
      FROM cameras c WHERE c.camera_id IS NOT NULL
), queue AS (
    SELECT q.* FROM cameras c CROSS JOIN LATERAL (
        SELECT d.id, d.camera_id AS queue, d.order_seq, d.next_attempt_at
          FROM delivery d
         WHERE d.agency_id = $1 AND d.camera_id = c.camera_id AND d.order_seq IS NOT NULL
           AND d.{_OPEN}
         ORDER BY d.order_seq LIMIT {rows}) q
     WHERE c.camera_id IS NOT NULL
)"""


# Claim the heads: a queue's rows from its front up to the first that is not due. A row in
# retry (due later) or leased by a live worker (in flight, lease not expired) is not due, so
# it and everything behind it wait: a failed head blocks its own queue and no other. An
# expired lease is due (a killed worker's rows come back, in their place). Oldest first over
# all queues, at most $2. No SKIP LOCKED: the order lock already keeps ordered claims apart.
_CLAIM_HEADS = """
WITH RECURSIVE {queue},
heads AS (
    SELECT id FROM (
        SELECT id, order_seq,
               bool_and(next_attempt_at <= now())
                   OVER (PARTITION BY queue ORDER BY order_seq) AS clear
          FROM queue) q
     WHERE clear
     ORDER BY order_seq LIMIT $2
), claimed AS (
    UPDATE delivery d
       SET status = 'in_flight', attempts = d.attempts + 1, updated_at = now(),
           next_attempt_at = now() + make_interval(secs => $3)
      FROM heads
     WHERE d.id = heads.id
 RETURNING d.id, d.attempts, d.attempt_limit, d.event_pk, d.event_captured_at, d.traceparent,
           d.order_seq, d.camera_id
)
SELECT c.*, e.payload::text AS payload, e.node_id
FROM claimed c
LEFT JOIN detection_event e ON e.id = c.event_pk AND e.captured_at = c.event_captured_at
ORDER BY c.order_seq
"""
_CLAIM_AGENCY_HEADS = _CLAIM_HEADS.format(queue=_queues(per_camera=False, rows="$2"))
_CLAIM_CAMERA_HEADS = _CLAIM_HEADS.format(queue=_queues(per_camera=True, rows="$2"))


async def lock_agency_order(conn: asyncpg.Connection, agency_id: UUID) -> None:
    """Wait for, then hold until this transaction ends, the agency's ordered-claim lock."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))", _ORDER_LOCK_CLASS, str(agency_id)
    )


async def number_open(conn: asyncpg.Connection, agency_id: UUID) -> int:
    """Give the agency's open rows that have no place in its queue one, behind the rest
    (under the agency's order lock); how many."""
    status: str = await conn.execute(_NUMBER_OPEN, agency_id)
    return int(status.rsplit(" ", 1)[-1])


async def claim_heads(
    conn: asyncpg.Connection,
    agency_id: UUID,
    *,
    per_camera: bool,
    limit: int,
    lease_seconds: float,
) -> list[Claimed]:
    """Claim up to `limit` rows from the front of a FIFO agency's queue (or of each camera's
    queue), in queue order, stopping each queue at its first row that is not due (under the
    agency's order lock)."""
    sql = _CLAIM_CAMERA_HEADS if per_camera else _CLAIM_AGENCY_HEADS
    rows = await conn.fetch(sql, agency_id, limit, lease_seconds)
    return [
        claimed_of(row, queue=row["camera_id"] if per_camera else "", order_seq=row["order_seq"])
        for row in rows
    ]


# When a FIFO agency next needs a look: the earliest due time of a queue's head (rows behind
# a head wait for it, whatever their own time says), or of a row not numbered yet.
_NEXT_HEAD_DUE = """
WITH RECURSIVE {queue}
SELECT extract(epoch FROM least(
           (SELECT min(next_attempt_at) FROM queue),
           (SELECT min(next_attempt_at) FROM delivery
             WHERE agency_id = $1 AND order_seq IS NULL AND {open})) - now())::float8
"""
_NEXT_AGENCY_HEAD_DUE = _NEXT_HEAD_DUE.format(queue=_queues(per_camera=False, rows="1"), open=_OPEN)
_NEXT_CAMERA_HEAD_DUE = _NEXT_HEAD_DUE.format(queue=_queues(per_camera=True, rows="1"), open=_OPEN)


async def next_head_due_in(
    conn: asyncpg.Connection, agency_id: UUID, *, per_camera: bool
) -> float | None:
    """`next_due_in` for a FIFO agency: seconds until a queue's head is due (0: now); None
    when nothing is open."""
    sql = _NEXT_CAMERA_HEAD_DUE if per_camera else _NEXT_AGENCY_HEAD_DUE
    value = await conn.fetchval(sql, agency_id)
    return None if value is None else max(0.0, float(value))


# The FIFO queues waiting behind a failed head: a head in retry (or in flight again) whose
# last attempt failed. `since` is its first failure after its last dead letter (a replay
# starts the count again).
_BLOCKED = """
WITH RECURSIVE {queue}
SELECT q.queue, d.id, d.attempts, d.next_attempt_at, d.last_error,
       (SELECT min(a.started_at) FROM delivery_attempt a
         WHERE a.delivery_id = d.id AND a.outcome = 'retry'
           AND a.attempt > coalesce((SELECT max(x.attempt) FROM delivery_attempt x
                                      WHERE x.delivery_id = d.id AND x.outcome = 'dead'), 0)
       ) AS since,
       (SELECT count(*) FROM delivery w
         WHERE w.agency_id = $1 AND w.order_seq > d.order_seq AND w.{open}
           AND (NOT $2 OR w.camera_id = d.camera_id)) AS waiting
FROM queue q JOIN delivery d ON d.id = q.id
WHERE d.status IN ('retrying', 'in_flight') AND d.last_error IS NOT NULL
ORDER BY since NULLS LAST
LIMIT 100
"""
_BLOCKED_AGENCY = _BLOCKED.format(queue=_queues(per_camera=False, rows="1"), open=_OPEN)
_BLOCKED_CAMERAS = _BLOCKED.format(queue=_queues(per_camera=True, rows="1"), open=_OPEN)


async def blocked_heads(
    conn: asyncpg.Connection, agency_id: UUID, agency_name: str, *, per_camera: bool
) -> list[OrderBlock]:
    """The agency's FIFO queues stopped behind a failed head (at most 100), oldest first."""
    sql = _BLOCKED_CAMERAS if per_camera else _BLOCKED_AGENCY
    rows = await conn.fetch(sql, agency_id, per_camera)
    return [
        OrderBlock(
            agency=agency_name,
            camera=row["queue"] if per_camera else None,
            delivery_id=row["id"],
            since=row["since"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            waiting=int(row["waiting"]),
        )
        for row in rows
    ]

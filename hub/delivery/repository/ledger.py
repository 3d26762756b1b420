"""SQL of the delivery ledger: rows planned at ingest, claimed in batches, finished in one
statement, and what is due."""

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec


def plan_of_inserted(*, first: int, inserted: str) -> str:
    """SQL planning a ledger row per (accepted event, enabled subscribed agency) for the rows
    a data-modifying CTE named `inserted` returns, with attempt limit and traceparent as
    parameters `first` and `first + 1`: the body of a CTE of ingest's events INSERT
    (hub/ingest/repository.py, ADR 0030), so routing a batch costs no statement of its own
    and reads what the statement inserted instead of parameters sent back. Returns each
    planned row's `agency_id`. Rows go in (event, agency) order, the order concurrent
    batches take the unique index's locks in."""
    return f"""INSERT INTO delivery
        (id, event_pk, event_captured_at, agency_id, attempt_limit, traceparent)
    SELECT gen_random_uuid(), e.id, e.captured_at, a.id, ${first}::int, ${first + 1}::text
    FROM {inserted} e
    JOIN agency a
      ON a.status <> 'disabled'
     AND (cardinality(a.sub_classes) = 0 OR a.sub_classes && e.classes)
     AND (cardinality(a.sub_cameras) = 0 OR e.camera_id = ANY (a.sub_cameras))
     AND e.max_confidence >= a.sub_min_confidence
    WHERE e.disposition = 'accepted'
    ORDER BY e.id, a.id
    ON CONFLICT (event_pk, event_captured_at, agency_id) DO NOTHING
    RETURNING agency_id"""


# Claim a batch of one agency's due rows for one attempt each: count the attempt and take a
# lease (next_attempt_at) that reconcile honours. SKIP LOCKED lets several workers take
# batches of one agency at once without waiting on each other; a row already delivered, dead
# or leased by a live worker is not due. An expired lease is due: a killed worker's batch
# comes back. The events come back in the same round trip.
_CLAIM_BATCH = """
WITH picked AS (
    SELECT id FROM delivery
     WHERE agency_id = $1
       AND status IN ('pending', 'retrying', 'in_flight')
       AND next_attempt_at <= now()
     ORDER BY next_attempt_at
     LIMIT $2
     FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE delivery d
       SET status = 'in_flight', attempts = d.attempts + 1, updated_at = now(),
           next_attempt_at = now() + make_interval(secs => $3)
      FROM picked
     WHERE d.id = picked.id
 RETURNING d.id, d.attempts, d.attempt_limit, d.event_pk, d.event_captured_at, d.traceparent
)
SELECT c.*, e.payload::text AS payload, e.node_id
FROM claimed c
LEFT JOIN detection_event e ON e.id = c.event_pk AND e.captured_at = c.event_captured_at
"""


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery claimed for one attempt, with its event (None if retention removed it)."""

    id: UUID
    attempt: int
    attempt_limit: int
    payload: str | None
    node_id: UUID | None
    traceparent: str | None = None
    # FIFO agencies only (ADR 0019): the queue the row belongs to ('' = the agency's one
    # queue, else its camera) and its place in it.
    queue: str | None = None
    order_seq: int | None = None


async def claim_batch(
    conn: asyncpg.Connection, agency_id: UUID, *, limit: int, lease_seconds: float
) -> list[Claimed]:
    """Claim up to `limit` due deliveries of one agency, oldest first."""
    rows = await conn.fetch(_CLAIM_BATCH, agency_id, limit, lease_seconds)
    return [claimed_of(row) for row in rows]


def claimed_of(
    row: asyncpg.Record, *, queue: str | None = None, order_seq: int | None = None
) -> Claimed:
    """A claimed row as the worker sends it (FIFO claims add its queue and place)."""
    return Claimed(
        id=row["id"],
        attempt=row["attempts"],
        attempt_limit=row["attempt_limit"],
        payload=row["payload"],
        node_id=row["node_id"],
        traceparent=row["traceparent"],
        queue=queue,
        order_seq=order_seq,
    )


# FIFO agencies (ADR 0019). Ordered claims of one agency take turns under this advisory lock
# (two-key form: its own key space, apart from the single-key locks elsewhere), held to the


class Finish(msgspec.Struct, frozen=True, kw_only=True):
    """How one attempt ended, as the ledger records it."""

    status: str  # the row's new status
    outcome: str  # the attempt's outcome
    started_at: datetime
    duration_ms: int
    retry_in_seconds: float = 0.0
    status_code: int | None = None
    error: str | None = None
    decision_id: str | None = None
    receipt: dict[str, Any] | None = None


# One round trip for a whole batch: every attempt row and every ledger update. A row is
# updated (and its attempt recorded) only while it still holds the attempt this worker
# claimed (`attempts = r.attempt`): a worker whose lease expired, and whose row another worker
# took over, cannot overwrite the newer attempt's result.
# `agency_id = $12` keeps the statement on the batch's own agency's rows: without it the
# planner (statistics say few rows are ever in flight) drove the update from every agency's
# in-flight rows and compared each with the whole batch; 10,000 rows of a slow agency in
# flight made a healthy agency's finish of 200 rows take 546 ms instead of 8 (issue 16).
_FINISH_BATCH = """
WITH r AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::int[],
                         $6::text[], $7::int[], $8::text[], $9::text[], $10::float8[],
                         $11::text[])
        AS r(id, status, attempt, started_at, duration_ms, outcome, status_code, error,
             decision_id, retry_in, receipt)
), moved AS (
    UPDATE delivery d
       SET status = r.status, updated_at = now(),
           next_attempt_at = now() + make_interval(secs => r.retry_in),
           last_error = r.error, last_status_code = r.status_code,
           decision_id = coalesce(r.decision_id, d.decision_id),
           receipt = coalesce(r.receipt::jsonb, d.receipt),
           delivered_at = CASE WHEN r.status = 'delivered' THEN now() ELSE d.delivered_at END,
           dead_at = CASE WHEN r.status = 'dead' THEN now() ELSE NULL END
      FROM r
     WHERE d.id = r.id AND d.attempts = r.attempt AND d.status = 'in_flight'
       AND d.agency_id = $12
 RETURNING d.id
)
INSERT INTO delivery_attempt
    (delivery_id, attempt, started_at, duration_ms, outcome, status_code, error, decision_id)
SELECT r.id, r.attempt, r.started_at, r.duration_ms, r.outcome, r.status_code, r.error,
       r.decision_id
FROM r JOIN moved ON moved.id = r.id
"""


async def finish_batch(
    conn: asyncpg.Connection, agency_id: UUID, results: Sequence[tuple[Claimed, Finish]]
) -> int:
    """Record every attempt of one agency's batch and move its rows on; how many rows were
    still ours."""
    columns: list[list[Any]] = [[] for _ in range(11)]
    for claimed, f in results:
        receipt = None if f.receipt is None else json.dumps(f.receipt)
        values = (
            claimed.id, f.status, claimed.attempt, f.started_at, f.duration_ms, f.outcome,
            f.status_code, f.error, f.decision_id, f.retry_in_seconds, receipt,
        )  # fmt: skip
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    status: str = await conn.execute(_FINISH_BATCH, *columns, agency_id)
    return int(status.rsplit(" ", 1)[-1])


async def release_claims(
    conn: asyncpg.Connection, agency_id: UUID, claimed: Sequence[Claimed], *, delay: float
) -> None:
    """Give one agency's claimed rows back without an attempt (agency paused or circuit
    opened meanwhile); on its own rows only, as `finish_batch`."""
    await conn.execute(
        """UPDATE delivery d
              SET status = CASE WHEN d.attempts = 1 THEN 'pending' ELSE 'retrying' END,
                  attempts = d.attempts - 1,
                  next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
             FROM unnest($1::uuid[], $2::int[]) AS r(id, attempt)
            WHERE d.id = r.id AND d.attempts = r.attempt AND d.status = 'in_flight'
              AND d.agency_id = $4""",
        [c.id for c in claimed],
        [c.attempt for c in claimed],
        delay,
        agency_id,
    )


async def next_due_in(conn: asyncpg.Connection, agency_id: UUID) -> float | None:
    """Seconds until the agency's next open row is due (0 when one is due now); None when
    nothing is open."""
    value = await conn.fetchval(
        """SELECT extract(epoch FROM min(next_attempt_at) - now())::float8
             FROM delivery
            WHERE agency_id = $1 AND status IN ('pending', 'retrying', 'in_flight')""",
        agency_id,
    )
    # min() of no rows is NULL (and greatest(0, NULL) would be 0: "due now", forever).
    return None if value is None else max(0.0, float(value))


async def due_agencies(conn: asyncpg.Connection, *, grace_seconds: float, limit: int) -> list[UUID]:
    """Active agencies (at most `limit`) with rows due for longer than the grace (or whose
    lease expired): work the queue should have and may have lost."""
    rows = await conn.fetch(
        """SELECT a.id FROM agency a
            WHERE a.status = 'active'
              AND EXISTS (SELECT 1 FROM delivery d
                           WHERE d.agency_id = a.id
                             AND d.status IN ('pending', 'retrying', 'in_flight')
                             AND d.next_attempt_at <= now() - make_interval(secs => $1))
            LIMIT $2""",
        grace_seconds,
        limit,
    )
    return [r["id"] for r in rows]


async def due_of_agency(conn: asyncpg.Connection, agency_id: UUID, *, limit: int) -> int:
    """Make the agency's undelivered rows due now (used on resume); how many."""
    status: str = await conn.execute(
        """UPDATE delivery SET next_attempt_at = now(), updated_at = now()
            WHERE id IN (SELECT id FROM delivery
                          WHERE agency_id = $1 AND status IN ('pending', 'retrying')
                          LIMIT $2)""",
        agency_id,
        limit,
    )
    return int(status.rsplit(" ", 1)[-1])


# Per active agency, each through delivery_agency_due_idx (migration 0023): a paused or
# disabled agency's rows are due for nobody, so they neither count towards back-pressure
# (which refuses every node's ingest) nor cost this count a row scanned. One agency's
# backlog must not slow or stop the others (issue 16).
_BACKLOG = """
SELECT (SELECT count(*) FROM (
            SELECT 1 FROM agency a
            CROSS JOIN LATERAL (
                SELECT 1 FROM delivery d
                 WHERE d.agency_id = a.id
                   AND d.status IN ('pending', 'retrying', 'in_flight')
                   AND d.next_attempt_at <= now()
                 LIMIT $1) AS due
             WHERE a.status = 'active'
             LIMIT $1) AS due) AS due,
       (SELECT extract(epoch FROM now() - min(o.at)) FROM agency a
        CROSS JOIN LATERAL (
            SELECT min(d.next_attempt_at) AS at FROM delivery d
             WHERE d.agency_id = a.id
               AND d.status IN ('pending', 'retrying', 'in_flight')
               AND d.next_attempt_at <= now()) AS o
         WHERE a.status = 'active') AS oldest
"""


async def backlog(conn: asyncpg.Connection, *, cap: int) -> tuple[int, float]:
    """Active agencies' due-but-undelivered rows (counted up to `cap`) and the oldest one's
    age in seconds."""
    row = await conn.fetchrow(_BACKLOG, cap)
    assert row is not None  # noqa: S101 - a SELECT without FROM always returns a row
    return int(row["due"]), float(row["oldest"] or 0.0)

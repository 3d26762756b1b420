"""SQL of agencies, the delivery ledger and attempts; the only module that queries them."""

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from hub.delivery.schemas import (
    Agency,
    AgencyCreate,
    AgencyRead,
    AttemptRead,
    DeliveryRead,
    OrderBlock,
    Subscription,
)

_AGENCY_COLUMNS = """id, name, adapter_kind, endpoint, config, status, purpose, sub_classes,
    sub_cameras, sub_min_confidence, jurisdictions, clearance, max_concurrency,
    rate_per_second, retry_schedule, ordering, paused_reason, paused_at, created_at"""


async def insert_agency(
    conn: asyncpg.Connection, *, agency_id: UUID, create: AgencyCreate, endpoint: str
) -> AgencyRead | None:
    """Insert an agency; None when the name is taken."""
    sub = create.subscription
    row = await conn.fetchrow(
        f"""INSERT INTO agency (id, name, adapter_kind, endpoint, config, purpose, sub_classes,
                sub_cameras, sub_min_confidence, jurisdictions, clearance, max_concurrency,
                rate_per_second, retry_schedule, ordering)
            VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
            ON CONFLICT (name) DO NOTHING
            RETURNING {_AGENCY_COLUMNS}""",
        agency_id,
        create.name,
        create.kind,
        endpoint,
        json.dumps(create.config),
        sub.purpose,
        sub.classes,
        sub.cameras,
        sub.min_confidence,
        create.jurisdictions,
        create.clearance,
        create.max_concurrency,
        create.rate_per_second,
        create.retry_schedule,
        create.ordering,
    )
    return None if row is None else _agency_read(row)


async def lock_agency_configs(conn: asyncpg.Connection) -> list[tuple[UUID, str, dict[str, Any]]]:
    """Every agency's id, adapter kind and stored configuration, locked for update."""
    rows = await conn.fetch("SELECT id, adapter_kind, config FROM agency ORDER BY name FOR UPDATE")
    return [(r["id"], r["adapter_kind"], json.loads(r["config"])) for r in rows]


async def update_agency_config(
    conn: asyncpg.Connection, agency_id: UUID, config: dict[str, Any]
) -> str:
    """Store an agency's (re-sealed) configuration; its name."""
    name: str = await conn.fetchval(
        "UPDATE agency SET config = $2::jsonb, updated_at = now() WHERE id = $1 RETURNING name",
        agency_id,
        json.dumps(config),
    )
    return name


async def select_agencies(conn: asyncpg.Connection) -> list[tuple[AgencyRead, Agency]]:
    """Every agency, as listed and as the worker uses it."""
    rows = await conn.fetch(f"SELECT {_AGENCY_COLUMNS} FROM agency ORDER BY name")
    return [(_agency_read(r), _agency(r)) for r in rows]


async def find_agency(conn: asyncpg.Connection, ref: str) -> tuple[AgencyRead, Agency] | None:
    """An agency by name or id."""
    row = await conn.fetchrow(
        f"SELECT {_AGENCY_COLUMNS} FROM agency WHERE name = $1 OR id::text = $1", ref
    )
    return None if row is None else (_agency_read(row), _agency(row))


async def update_agency_ordering(
    conn: asyncpg.Connection, agency_id: UUID, ordering: str
) -> AgencyRead:
    """Set an agency's ordering; the agency as it now is."""
    row = await conn.fetchrow(
        f"""UPDATE agency SET ordering = $2, updated_at = now() WHERE id = $1
            RETURNING {_AGENCY_COLUMNS}""",
        agency_id,
        ordering,
    )
    assert row is not None  # noqa: S101 - the caller found the agency in this transaction
    return _agency_read(row)


async def set_agency_status(
    conn: asyncpg.Connection,
    agency_id: UUID,
    *,
    status: str,
    reason: str | None,
    only_if: Sequence[str],
) -> AgencyRead | None:
    """Move an agency to `status` when it is in one of `only_if`; None when it was not."""
    row = await conn.fetchrow(
        f"""UPDATE agency SET status = $2, paused_reason = $3,
                paused_at = CASE WHEN $2 = 'paused' THEN now() ELSE NULL END, updated_at = now()
            WHERE id = $1 AND status = ANY($4::text[])
            RETURNING {_AGENCY_COLUMNS}""",
        agency_id,
        status,
        reason,
        list(only_if),
    )
    return None if row is None else _agency_read(row)


def _agency_read(row: asyncpg.Record) -> AgencyRead:
    return AgencyRead(
        id=row["id"],
        name=row["name"],
        kind=row["adapter_kind"],
        endpoint=row["endpoint"],
        status=row["status"],
        subscription=Subscription(
            classes=list(row["sub_classes"]),
            cameras=list(row["sub_cameras"]),
            min_confidence=round(float(row["sub_min_confidence"]), 6),
            purpose=row["purpose"],
        ),
        jurisdictions=list(row["jurisdictions"]),
        clearance=row["clearance"],
        max_concurrency=row["max_concurrency"],
        rate_per_second=float(row["rate_per_second"]),
        retry_schedule=_schedule(row),
        ordering=row["ordering"],
        paused_reason=row["paused_reason"],
        paused_at=row["paused_at"],
        created_at=row["created_at"],
    )


def _agency(row: asyncpg.Record) -> Agency:
    return Agency(
        id=row["id"],
        name=row["name"],
        kind=row["adapter_kind"],
        config=json.loads(row["config"]),
        status=row["status"],
        purpose=row["purpose"],
        jurisdictions=list(row["jurisdictions"]),
        clearance=row["clearance"],
        max_concurrency=row["max_concurrency"],
        rate_per_second=float(row["rate_per_second"]),
        retry_schedule=_schedule(row),
        ordering=row["ordering"],
    )


def _schedule(row: asyncpg.Record) -> list[float] | None:
    found = row["retry_schedule"]
    return None if found is None else [float(seconds) for seconds in found]


# Routing happens here, in one statement: each new event joins every agency whose
# subscription matches (empty list = everything). Paused agencies get rows too; they are
# delivered after resume. Sorted, so concurrent batches lock rows in one order. Each row keeps
# the ingest request's trace, which the batch that sends it continues.
_PLAN = """
INSERT INTO delivery (id, event_pk, event_captured_at, agency_id, attempt_limit, traceparent)
SELECT gen_random_uuid(), e.id, e.captured_at, a.id, $3, $4
FROM detection_event e
JOIN agency a
  ON a.status <> 'disabled'
 AND (cardinality(a.sub_classes) = 0 OR a.sub_classes && e.classes)
 AND (cardinality(a.sub_cameras) = 0 OR e.camera_id = ANY (a.sub_cameras))
 AND e.max_confidence >= a.sub_min_confidence
WHERE e.node_id = $1 AND e.event_id = ANY ($2::uuid[]) AND e.disposition = 'accepted'
ORDER BY e.id, a.id
ON CONFLICT (event_pk, event_captured_at, agency_id) DO NOTHING
RETURNING id, agency_id
"""


async def plan_deliveries(
    conn: asyncpg.Connection,
    *,
    node_id: UUID,
    event_ids: Sequence[UUID],
    attempt_limit: int,
    traceparent: str | None = None,
) -> list[tuple[UUID, UUID]]:
    """Create the ledger rows for new events; (delivery id, agency id) of each."""
    rows = await conn.fetch(_PLAN, node_id, list(event_ids), attempt_limit, traceparent)
    return [(r["id"], r["agency_id"]) for r in rows]


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
    return [
        Claimed(
            id=row["id"],
            attempt=row["attempts"],
            attempt_limit=row["attempt_limit"],
            payload=row["payload"],
            node_id=row["node_id"],
            traceparent=row["traceparent"],
        )
        for row in rows
    ]


# FIFO agencies (ADR 0019). Ordered claims of one agency take turns under this advisory lock
# (two-key form: its own key space, apart from the single-key locks elsewhere), held to the
# end of the claim's transaction: a claim sees every row the previous one numbered or took.
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
        Claimed(
            id=row["id"],
            attempt=row["attempts"],
            attempt_limit=row["attempt_limit"],
            payload=row["payload"],
            node_id=row["node_id"],
            traceparent=row["traceparent"],
            queue=row["camera_id"] if per_camera else "",
            order_seq=row["order_seq"],
        )
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
 RETURNING d.id
)
INSERT INTO delivery_attempt
    (delivery_id, attempt, started_at, duration_ms, outcome, status_code, error, decision_id)
SELECT r.id, r.attempt, r.started_at, r.duration_ms, r.outcome, r.status_code, r.error,
       r.decision_id
FROM r JOIN moved ON moved.id = r.id
"""


async def finish_batch(conn: asyncpg.Connection, results: Sequence[tuple[Claimed, Finish]]) -> int:
    """Record every attempt of a batch and move its rows on; how many rows were still ours."""
    columns: list[list[Any]] = [[] for _ in range(11)]
    for claimed, f in results:
        receipt = None if f.receipt is None else json.dumps(f.receipt)
        values = (
            claimed.id, f.status, claimed.attempt, f.started_at, f.duration_ms, f.outcome,
            f.status_code, f.error, f.decision_id, f.retry_in_seconds, receipt,
        )  # fmt: skip
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    status: str = await conn.execute(_FINISH_BATCH, *columns)
    return int(status.rsplit(" ", 1)[-1])


async def release_claims(
    conn: asyncpg.Connection, claimed: Sequence[Claimed], *, delay: float
) -> None:
    """Give claimed rows back without an attempt (agency paused or circuit opened meanwhile)."""
    await conn.execute(
        """UPDATE delivery d
              SET status = CASE WHEN d.attempts = 1 THEN 'pending' ELSE 'retrying' END,
                  attempts = d.attempts - 1,
                  next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
             FROM unnest($1::uuid[], $2::int[]) AS r(id, attempt)
            WHERE d.id = r.id AND d.attempts = r.attempt AND d.status = 'in_flight'""",
        [c.id for c in claimed],
        [c.attempt for c in claimed],
        delay,
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


async def backlog(conn: asyncpg.Connection, *, cap: int) -> tuple[int, float]:
    """Due-but-undelivered rows (counted up to `cap`) and the oldest one's age in seconds."""
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM (
                       SELECT 1 FROM delivery
                        WHERE status IN ('pending', 'retrying', 'in_flight')
                          AND next_attempt_at <= now() LIMIT $1) AS due) AS due,
                  (SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM delivery
                    WHERE status IN ('pending', 'retrying', 'in_flight')
                      AND next_attempt_at <= now()) AS oldest""",
        cap,
    )
    assert row is not None  # noqa: S101 - a SELECT without FROM always returns a row
    return int(row["due"]), float(row["oldest"] or 0.0)


_DELIVERY_COLUMNS = """d.id, a.name AS agency, d.event_pk, d.event_captured_at, d.status,
    d.attempts, d.attempt_limit, d.next_attempt_at, d.last_error, d.last_status_code,
    d.decision_id, d.receipt::text AS receipt, d.created_at, d.updated_at, d.delivered_at,
    d.dead_at"""


def _delivery(row: asyncpg.Record) -> DeliveryRead:
    values = dict(row)
    values["receipt"] = None if row["receipt"] is None else json.loads(row["receipt"])
    return msgspec.convert(values, DeliveryRead)


async def get_delivery(conn: asyncpg.Connection, delivery_id: UUID) -> DeliveryRead | None:
    """One delivery by id."""
    row = await conn.fetchrow(
        f"""SELECT {_DELIVERY_COLUMNS} FROM delivery d JOIN agency a ON a.id = d.agency_id
             WHERE d.id = $1""",
        delivery_id,
    )
    return None if row is None else _delivery(row)


async def list_deliveries(
    conn: asyncpg.Connection,
    *,
    status: str | None,
    agency: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[DeliveryRead]:
    """Deliveries newest first, filtered; dead letters are ordered by when they died."""
    rows = await conn.fetch(
        f"""SELECT {_DELIVERY_COLUMNS} FROM delivery d JOIN agency a ON a.id = d.agency_id
             WHERE ($1::text IS NULL OR d.status = $1)
               AND ($2::text IS NULL OR a.name = $2)
               AND ($3::timestamptz IS NULL OR coalesce(d.dead_at, d.updated_at) >= $3)
               AND ($4::timestamptz IS NULL OR coalesce(d.dead_at, d.updated_at) < $4)
             ORDER BY coalesce(d.dead_at, d.updated_at) DESC, d.id
             LIMIT $5""",
        status,
        agency,
        since,
        until,
        limit,
    )
    return [_delivery(r) for r in rows]


async def attempts_of(conn: asyncpg.Connection, delivery_id: UUID) -> list[AttemptRead]:
    """Every attempt of a delivery, first first."""
    rows = await conn.fetch(
        """SELECT attempt, started_at, duration_ms, outcome, status_code, error, decision_id
             FROM delivery_attempt WHERE delivery_id = $1 ORDER BY attempt, id""",
        delivery_id,
    )
    return [msgspec.convert(dict(r), AttemptRead) for r in rows]


async def replay(
    conn: asyncpg.Connection,
    *,
    ids: Sequence[UUID] | None,
    agency: str | None,
    since: datetime | None,
    until: datetime | None,
    extra_attempts: int,
    limit: int,
) -> list[tuple[UUID, UUID]]:
    """Dead letters back to `pending`, due now, with `extra_attempts` more allowed."""
    rows = await conn.fetch(
        """UPDATE delivery d
              SET status = 'pending', next_attempt_at = now(), dead_at = NULL,
                  attempt_limit = d.attempts + $6, updated_at = now(),
                  -- A FIFO agency's replayed dead letter joins the end of its queue
                  -- (ADR 0019): it is numbered again by the next ordered claim.
                  order_seq = NULL
            WHERE d.id IN (
                SELECT x.id FROM delivery x JOIN agency a ON a.id = x.agency_id
                 WHERE x.status = 'dead'
                   AND ($1::uuid[] IS NULL OR x.id = ANY ($1::uuid[]))
                   AND ($2::text IS NULL OR a.name = $2)
                   AND ($3::timestamptz IS NULL OR x.dead_at >= $3)
                   AND ($4::timestamptz IS NULL OR x.dead_at < $4)
                 ORDER BY x.dead_at LIMIT $5
                 FOR UPDATE OF x)
        RETURNING d.id, d.agency_id""",
        None if ids is None else list(ids),
        agency,
        since,
        until,
        limit,
        extra_attempts,
    )
    return [(r["id"], r["agency_id"]) for r in rows]


async def status_counts(conn: asyncpg.Connection) -> dict[UUID, dict[str, int]]:
    """Deliveries per agency and status."""
    rows = await conn.fetch(
        "SELECT agency_id, status, count(*) AS n FROM delivery GROUP BY agency_id, status"
    )
    counts: dict[UUID, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["agency_id"], {})[r["status"]] = int(r["n"])
    return counts

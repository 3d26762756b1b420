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
    Subscription,
)

_AGENCY_COLUMNS = """id, name, adapter_kind, endpoint, config, status, purpose, sub_classes,
    sub_cameras, sub_min_confidence, jurisdictions, clearance, max_concurrency,
    rate_per_second, paused_reason, paused_at, created_at"""


async def insert_agency(
    conn: asyncpg.Connection, *, agency_id: UUID, create: AgencyCreate, endpoint: str
) -> AgencyRead | None:
    """Insert an agency; None when the name is taken."""
    sub = create.subscription
    row = await conn.fetchrow(
        f"""INSERT INTO agency (id, name, adapter_kind, endpoint, config, purpose, sub_classes,
                sub_cameras, sub_min_confidence, jurisdictions, clearance, max_concurrency,
                rate_per_second)
            VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12, $13)
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
    )
    return None if row is None else _agency_read(row)


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
    )


# Routing happens here, in one statement: each new event joins every agency whose
# subscription matches (empty list = everything). Paused agencies get rows too; they are
# delivered after resume. Sorted, so concurrent batches lock rows in one order.
_PLAN = """
INSERT INTO delivery (id, event_pk, event_captured_at, agency_id, attempt_limit)
SELECT gen_random_uuid(), e.id, e.captured_at, a.id, $3
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
    conn: asyncpg.Connection, *, node_id: UUID, event_ids: Sequence[UUID], attempt_limit: int
) -> list[tuple[UUID, UUID]]:
    """Create the ledger rows for new events; (delivery id, agency id) of each."""
    rows = await conn.fetch(_PLAN, node_id, list(event_ids), attempt_limit)
    return [(r["id"], r["agency_id"]) for r in rows]


# Claim a row for one attempt: count the attempt and take a lease (next_attempt_at) that
# reconcile honours. A row already delivered, dead, or leased by a live worker is not
# claimed. The event comes back in the same round trip.
_CLAIM = """
WITH claimed AS (
    UPDATE delivery d
       SET status = 'in_flight', attempts = d.attempts + 1, updated_at = now(),
           next_attempt_at = now() + make_interval(secs => $2)
     WHERE d.id = $1
       AND (d.status IN ('pending', 'retrying')
            OR (d.status = 'in_flight' AND d.next_attempt_at <= now()))
 RETURNING d.id, d.agency_id, d.attempts, d.attempt_limit, d.event_pk, d.event_captured_at
)
SELECT c.*, e.payload::text AS payload, e.node_id, e.event_id
FROM claimed c
LEFT JOIN detection_event e ON e.id = c.event_pk AND e.captured_at = c.event_captured_at
"""


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery claimed for one attempt, with its event (None if retention removed it)."""

    id: UUID
    agency_id: UUID
    attempt: int
    attempt_limit: int
    captured_at: datetime
    payload: str | None
    node_id: UUID | None
    event_id: UUID | None


async def claim(
    conn: asyncpg.Connection, delivery_id: UUID, *, lease_seconds: float
) -> Claimed | None:
    """Claim a delivery for one attempt; None when it is not (or no longer) deliverable."""
    row = await conn.fetchrow(_CLAIM, delivery_id, lease_seconds)
    if row is None:
        return None
    return Claimed(
        id=row["id"],
        agency_id=row["agency_id"],
        attempt=row["attempts"],
        attempt_limit=row["attempt_limit"],
        captured_at=row["event_captured_at"],
        payload=row["payload"],
        node_id=row["node_id"],
        event_id=row["event_id"],
    )


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


# One round trip: the attempt row and the ledger update. `attempts = $3` makes a worker whose
# lease expired (another took the row over) unable to overwrite the newer attempt's result.
_FINISH = """
WITH attempt AS (
    INSERT INTO delivery_attempt
        (delivery_id, attempt, started_at, duration_ms, outcome, status_code, error, decision_id)
    SELECT $1, $3, $4, $5, $6, $7, $8, $9
    WHERE EXISTS (SELECT 1 FROM delivery WHERE id = $1 AND attempts = $3)
)
UPDATE delivery
   SET status = $2, updated_at = now(),
       next_attempt_at = now() + make_interval(secs => $10),
       last_error = $8, last_status_code = $7, decision_id = coalesce($9, decision_id),
       receipt = coalesce($11::jsonb, receipt),
       delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END,
       dead_at = CASE WHEN $2 = 'dead' THEN now() ELSE NULL END
 WHERE id = $1 AND attempts = $3 AND status = 'in_flight'
"""


async def finish(conn: asyncpg.Connection, delivery_id: UUID, attempt: int, result: Finish) -> bool:
    """Record an attempt and move the row on; False when the row was taken over meanwhile."""
    status: str = await conn.execute(
        _FINISH,
        delivery_id,
        result.status,
        attempt,
        result.started_at,
        result.duration_ms,
        result.outcome,
        result.status_code,
        result.error,
        result.decision_id,
        result.retry_in_seconds,
        None if result.receipt is None else json.dumps(result.receipt),
    )
    return status.endswith(" 1")


async def release_claim(
    conn: asyncpg.Connection, delivery_id: UUID, attempt: int, *, delay: float
) -> None:
    """Give a claimed row back without an attempt (circuit opened, agency paused meanwhile)."""
    await conn.execute(
        """UPDATE delivery SET status = CASE WHEN attempts = 1 THEN 'pending' ELSE 'retrying' END,
               attempts = attempts - 1, next_attempt_at = now() + make_interval(secs => $3),
               updated_at = now()
           WHERE id = $1 AND attempts = $2 AND status = 'in_flight'""",
        delivery_id,
        attempt,
        delay,
    )


async def due_deliveries(
    conn: asyncpg.Connection, *, grace_seconds: float, limit: int
) -> list[tuple[UUID, UUID]]:
    """Rows due for longer than the grace (or whose lease expired) of active agencies."""
    rows = await conn.fetch(
        """SELECT d.id, d.agency_id FROM delivery d
             JOIN agency a ON a.id = d.agency_id AND a.status = 'active'
            WHERE d.status IN ('pending', 'retrying', 'in_flight')
              AND d.next_attempt_at <= now() - make_interval(secs => $1)
            ORDER BY d.next_attempt_at
            LIMIT $2""",
        grace_seconds,
        limit,
    )
    return [(r["id"], r["agency_id"]) for r in rows]


async def due_of_agency(
    conn: asyncpg.Connection, agency_id: UUID, *, limit: int
) -> list[tuple[UUID, UUID]]:
    """Every undelivered row of one agency, made due now (used on resume)."""
    rows = await conn.fetch(
        """UPDATE delivery SET next_attempt_at = now(), updated_at = now()
            WHERE id IN (SELECT id FROM delivery
                          WHERE agency_id = $1 AND status IN ('pending', 'retrying')
                          LIMIT $2)
        RETURNING id, agency_id""",
        agency_id,
        limit,
    )
    return [(r["id"], r["agency_id"]) for r in rows]


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
                  attempt_limit = d.attempts + $6, updated_at = now()
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

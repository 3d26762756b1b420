"""SQL of what operators read: deliveries, their attempts and counts; replay."""

import json
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from hub.delivery.schemas import (
    AttemptRead,
    DeliveryRead,
)

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

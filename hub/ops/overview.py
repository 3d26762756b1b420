"""The numbers behind the console's Overview and Deliveries pages, read in one snapshot."""

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from hub.delivery.agencies import agency_health, get_agency
from hub.delivery.breaker import CircuitBreaker
from hub.kit.db import Database
from hub.kit.errors import NotFoundError
from hub.policy.guard import Decider
from hub.policy.release import release
from hub.policy.schemas import Recipient

WINDOW = timedelta(hours=24)


class HourCount(msgspec.Struct, frozen=True, kw_only=True):
    """Events ingested in one hour."""

    hour: datetime
    events: int


class AgencyFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One agency's deliveries: counts by status, attempts and latency in the window,
    circuit state and whether it is paused."""

    agency: str
    status: str
    circuit: str
    counts: dict[str, int]
    attempts: int
    delivered: int
    success_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class Overview(msgspec.Struct, frozen=True, kw_only=True):
    """The hub at a glance (the window is the last 24 hours)."""

    at: datetime
    events_total: int
    events_window: int
    events_by_hour: list[HourCount]
    backlog: int
    dead_letters: int
    agencies: list[AgencyFigures]
    open_incidents: int
    active_revision: str | None
    slo_burn_rates: dict[str, float] | None = None
    notes: list[str] = []


class DeliveryPreview(msgspec.Struct, frozen=True, kw_only=True):
    """What a delivery would carry now: the record as released to its agency."""

    delivery_id: UUID
    agency: str
    allowed: bool
    reason: str
    decision_id: str
    record: dict[str, Any] | None
    manifest: list[Any]


async def read_overview(
    db: Database, breaker: CircuitBreaker, *, revision: str | None, now: datetime
) -> Overview:
    """Every figure of the overview."""
    since = now - WINDOW
    pool = db.pool
    totals = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM detection_event) AS total,
                  (SELECT count(*) FROM detection_event WHERE received_at >= $1) AS recent,
                  (SELECT count(*) FROM delivery WHERE status IN ('pending', 'retrying')
                       AND next_attempt_at <= $2) AS backlog,
                  (SELECT count(*) FROM delivery WHERE status = 'dead') AS dead""",
        since,
        now,
    )
    hours = await pool.fetch(
        """SELECT date_trunc('hour', received_at) AS hour, count(*) AS n FROM detection_event
           WHERE received_at >= $1 GROUP BY 1 ORDER BY 1""",
        since,
    )
    latency = await _latency(db, since)
    health = await agency_health(db, breaker)
    return Overview(
        at=now,
        events_total=totals["total"],
        events_window=totals["recent"],
        events_by_hour=[HourCount(hour=r["hour"], events=r["n"]) for r in hours],
        backlog=totals["backlog"],
        dead_letters=totals["dead"],
        agencies=[_figures(h.agency.name, h, latency.get(h.agency.name)) for h in health],
        open_incidents=await _open_incidents(db),
        active_revision=revision,
        slo_burn_rates=None,
        notes=["SLO burn rates arrive with observability (issue 9)"],
    )


async def preview_delivery(
    db: Database, policy: Decider, delivery_id: UUID, *, hash_key: bytes
) -> DeliveryPreview:
    """The delivery's event as `release()` would let its agency see it now."""
    row = await db.pool.fetchrow(
        """SELECT a.name, e.payload::text AS payload FROM delivery d
           JOIN agency a ON a.id = d.agency_id
           LEFT JOIN detection_event e ON e.id = d.event_pk AND e.captured_at = d.event_captured_at
           WHERE d.id = $1""",
        delivery_id,
    )
    if row is None or row["payload"] is None:
        raise NotFoundError(f"no delivery {delivery_id} with a stored event")
    _, agency = await get_agency(db, row["name"])
    released = await release(
        policy,
        recipient=Recipient(
            id=agency.name,
            kind="agency",
            jurisdictions=agency.jurisdictions,
            clearance=agency.clearance,
        ),
        purpose=agency.purpose,
        data_class="detection_event",
        record=msgspec.json.decode(row["payload"]),
        hash_master_key=hash_key,
    )
    return DeliveryPreview(
        delivery_id=delivery_id,
        agency=agency.name,
        allowed=released.allowed,
        reason=released.reason,
        decision_id=released.decision_id,
        record=released.record,
        manifest=msgspec.to_builtins(released.manifest),
    )


async def _latency(db: Database, since: datetime) -> dict[str, tuple[int, int, Any, Any]]:
    rows = await db.pool.fetch(
        """SELECT a.name, count(*) AS attempts,
                  count(*) FILTER (WHERE t.outcome = 'delivered') AS delivered,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY t.duration_ms) AS p50,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms) AS p95
           FROM delivery_attempt t JOIN delivery d ON d.id = t.delivery_id
           JOIN agency a ON a.id = d.agency_id
           WHERE t.started_at >= $1 GROUP BY a.name""",
        since,
    )
    return {r["name"]: (r["attempts"], r["delivered"], r["p50"], r["p95"]) for r in rows}


def _figures(name: str, health: Any, latency: tuple[int, int, Any, Any] | None) -> AgencyFigures:
    attempts, delivered, p50, p95 = latency or (0, 0, None, None)
    return AgencyFigures(
        agency=name,
        status=health.agency.status,
        circuit=health.breaker.state,
        counts=health.counts,
        attempts=attempts,
        delivered=delivered,
        success_rate=(delivered / attempts) if attempts else None,
        latency_p50_ms=None if p50 is None else float(p50),
        latency_p95_ms=None if p95 is None else float(p95),
    )


async def _open_incidents(db: Database) -> int:
    value = await db.pool.fetchval("SELECT count(*) FROM incident WHERE status <> 'closed'")
    return int(value or 0)

"""The numbers behind the console's Overview and Deliveries pages, read in one snapshot."""

from datetime import datetime, timedelta
from typing import Any

import msgspec

from hub.delivery.agencies import agency_health
from hub.delivery.breaker import CircuitBreaker
from hub.kit.db import Database

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

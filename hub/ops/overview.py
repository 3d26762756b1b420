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
    circuit state and whether it is paused.

    `sent` counts attempts that sent something; `withheld` ones (release policy kept the
    record back) sent nothing, so the success rate (delivered / sent) and the latency
    percentiles leave them out."""

    agency: str
    status: str
    circuit: str
    counts: dict[str, int]
    attempts: int
    sent: int
    withheld: int
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
    )


class _Attempts(msgspec.Struct, frozen=True):
    attempts: int = 0
    withheld: int = 0
    delivered: int = 0
    p50: float | None = None
    p95: float | None = None


async def _latency(db: Database, since: datetime) -> dict[str, _Attempts]:
    """Per agency: attempts, the withheld ones, and delivered/percentiles over sent ones."""
    rows = await db.pool.fetch(
        """SELECT a.name, count(*) AS attempts,
                  count(*) FILTER (WHERE t.outcome = 'withheld') AS withheld,
                  count(*) FILTER (WHERE t.outcome = 'delivered') AS delivered,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY t.duration_ms)
                      FILTER (WHERE t.outcome <> 'withheld') AS p50,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms)
                      FILTER (WHERE t.outcome <> 'withheld') AS p95
           FROM delivery_attempt t JOIN delivery d ON d.id = t.delivery_id
           JOIN agency a ON a.id = d.agency_id
           WHERE t.started_at >= $1 GROUP BY a.name""",
        since,
    )
    return {
        r["name"]: _Attempts(
            r["attempts"],
            r["withheld"],
            r["delivered"],
            None if r["p50"] is None else float(r["p50"]),
            None if r["p95"] is None else float(r["p95"]),
        )
        for r in rows
    }


def _figures(name: str, health: Any, latency: _Attempts | None) -> AgencyFigures:
    seen = latency or _Attempts()
    sent = seen.attempts - seen.withheld
    return AgencyFigures(
        agency=name,
        status=health.agency.status,
        circuit=health.breaker.state,
        counts=health.counts,
        attempts=seen.attempts,
        sent=sent,
        withheld=seen.withheld,
        delivered=seen.delivered,
        success_rate=(seen.delivered / sent) if sent else None,
        latency_p50_ms=seen.p50,
        latency_p95_ms=seen.p95,
    )


async def _open_incidents(db: Database) -> int:
    value = await db.pool.fetchval("SELECT count(*) FROM incident WHERE status <> 'closed'")
    return int(value or 0)

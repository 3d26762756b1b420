"""The numbers behind the console's Overview and Deliveries pages, read in one snapshot."""

from datetime import datetime, timedelta
from typing import Any

import asyncpg
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
    # Counts for a screen refreshed by a person: a replica within the lag bound (ADR 0016)
    # is fresh enough and nothing is written from them. One read-only repeatable-read
    # transaction on that connection makes them one snapshot.
    async with db.reader() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        figures = await _read_figures(conn, since=now - WINDOW, now=now)
    health = await agency_health(db, breaker)
    return Overview(
        at=now,
        events_total=figures.total,
        events_window=figures.recent,
        events_by_hour=figures.hours,
        backlog=figures.backlog,
        dead_letters=figures.dead,
        agencies=[_figures(h.agency.name, h, figures.latency.get(h.agency.name)) for h in health],
        open_incidents=figures.open_incidents,
        active_revision=revision,
    )


class _Figures(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    recent: int
    backlog: int
    dead: int
    hours: list[HourCount]
    latency: "dict[str, _Attempts]"
    open_incidents: int


async def _read_figures(conn: asyncpg.Connection, *, since: datetime, now: datetime) -> _Figures:
    """The overview's counts from the database, read on one connection."""
    totals = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM detection_event) AS total,
                  (SELECT count(*) FROM detection_event WHERE received_at >= $1) AS recent,
                  (SELECT count(*) FROM delivery WHERE status IN ('pending', 'retrying')
                       AND next_attempt_at <= $2) AS backlog,
                  (SELECT count(*) FROM delivery WHERE status = 'dead') AS dead,
                  (SELECT count(*) FROM incident WHERE status <> 'closed') AS open_incidents""",
        since,
        now,
    )
    hours = await conn.fetch(
        """SELECT date_trunc('hour', received_at) AS hour, count(*) AS n FROM detection_event
           WHERE received_at >= $1 GROUP BY 1 ORDER BY 1""",
        since,
    )
    return _Figures(
        total=totals["total"],
        recent=totals["recent"],
        backlog=totals["backlog"],
        dead=totals["dead"],
        hours=[HourCount(hour=r["hour"], events=r["n"]) for r in hours],
        latency=await _latency(conn, since),
        open_incidents=totals["open_incidents"],
    )


class _Attempts(msgspec.Struct, frozen=True):
    attempts: int = 0
    withheld: int = 0
    delivered: int = 0
    p50: float | None = None
    p95: float | None = None


async def _latency(conn: asyncpg.Connection, since: datetime) -> dict[str, _Attempts]:
    """Per agency: attempts, the withheld ones, and delivered/percentiles over sent ones."""
    rows = await conn.fetch(
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

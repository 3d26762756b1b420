"""arq job of observability: gauges that only the database, the ledger and the breakers know
(dead letters, circuit states, the audit checkpoint's age and what the witness is owed),
refreshed by one worker at a time."""

from datetime import datetime
from typing import Any

import asyncpg
import structlog

from hub.audit import checkpoint_owed_since, checkpoint_stale, witness_status
from hub.delivery.agencies import agency_health
from hub.kit.clock import utcnow
from hub.observability.metrics import ObservabilityMetrics, default_metrics
from hub.runtime import Services

log = structlog.get_logger(__name__)
BREAKER_STATES = ("closed", "open", "half_open")


async def refresh_gauges_job(ctx: dict[str, Any]) -> dict[str, int]:
    """Set `hub_delivery_dead_letters` and `hub_delivery_circuit_state` per agency, and the
    audit checkpoint gauges."""
    services: Services = ctx["services"]
    metrics = default_metrics()
    health = await agency_health(services.db, services.delivery.breaker)
    for item in health:
        name = item.agency.name
        metrics.dead_letters.labels(name).set(item.counts.get("dead", 0))
        for state in BREAKER_STATES:
            metrics.circuit_state.labels(name, state).set(1 if item.breaker.state == state else 0)
    every_seconds, now = services.settings.audit_checkpoint_seconds, utcnow()
    stale = await refresh_checkpoint_gauges(
        services.db.pool, metrics, every_seconds=every_seconds, now=now
    )
    behind = await refresh_witness_gauges(
        services.db.pool,
        metrics,
        witness=services.settings.audit_witness,
        every_seconds=every_seconds,
        now=now,
    )
    return {
        "agencies": len(health),
        "audit_checkpoint_stale": int(stale),
        "audit_witness_behind": int(behind),
    }


async def refresh_checkpoint_gauges(
    pool: asyncpg.Pool, metrics: ObservabilityMetrics, *, every_seconds: int, now: datetime
) -> bool:
    """Publish when the newest audit checkpoint was signed; True (and an alert line in the
    log, as other in-process alerts write one) when it is older than 3 intervals."""
    owed_since = await checkpoint_owed_since(pool)
    metrics.audit_checkpoint_interval.set(every_seconds)
    # An empty log owes nothing: "now", never 0, which the alert would read as ages ago.
    metrics.audit_checkpoint_at.set((owed_since or now).timestamp())
    stale = _overdue(
        owed_since,
        now=now,
        every_seconds=every_seconds,
        alert="AuditCheckpointStale",
        message="no audit checkpoint signed for over 3 intervals",
    )
    metrics.audit_checkpoint_stale.set(int(stale))
    return stale


async def refresh_witness_gauges(
    pool: asyncpg.Pool,
    metrics: ObservabilityMetrics,
    *,
    witness: str,
    every_seconds: int,
    now: datetime,
) -> bool:
    """Publish since when the outside witness is owed a checkpoint and how many; True (and an
    alert line in the log) when the oldest it lacks was signed over 3 intervals ago. Without
    a witness nothing is owed (`witness_status`)."""
    status = await witness_status(pool, witness=witness)
    metrics.audit_witness_owed_since.set((status.owed_since or now).timestamp())
    metrics.audit_checkpoints_unwitnessed.set(status.unwitnessed)
    return _overdue(
        status.owed_since,
        now=now,
        every_seconds=every_seconds,
        alert="AuditWitnessBehind",
        message="the audit witness has not received checkpoints for over 3 intervals",
        unwitnessed=status.unwitnessed,
    )


def _overdue(
    owed_since: datetime | None,
    *,
    now: datetime,
    every_seconds: int,
    alert: str,
    message: str,
    **detail: object,
) -> bool:
    """Whether what is owed since `owed_since` is over 3 intervals late; if so, the alert's
    line in the log, as other in-process alerts write one."""
    late = checkpoint_stale(owed_since, now=now, every_seconds=every_seconds)
    if late and owed_since is not None:
        log.error(
            message,
            alert=alert,
            owed_since=owed_since.isoformat(),
            age_seconds=round((now - owed_since).total_seconds()),
            every_seconds=every_seconds,
            **detail,
        )
    return late

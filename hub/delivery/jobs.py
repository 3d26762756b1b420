"""arq jobs of delivery: one job per delivery (job id = delivery id) and the reconcile cron.

arq retries only when a job raises `Retry`; every other outcome (delivered, dead letter,
withheld) is already in the ledger when the job returns, so arq's own result is not kept.
"""

from typing import Any
from uuid import UUID

import structlog
from arq import Retry
from opentelemetry.trace import SpanKind

from hub.delivery import repository
from hub.delivery.dispatch import DeliveryDeps, run_delivery
from hub.observability import span
from hub.runtime import Services

log = structlog.get_logger("hub.delivery.jobs")


async def deliver(
    ctx: dict[str, Any], delivery_id: str, agency_id: str, traceparent: str | None = None
) -> None:
    """Attempt one delivery; on a retryable failure run again when the ledger says.
    A job queued by ingest continues the edge request's trace (`traceparent`)."""
    deps: DeliveryDeps = ctx["delivery_deps"]
    attributes = {"hub.delivery_id": delivery_id, "messaging.operation": "process"}
    with span("deliver", traceparent=traceparent, kind=SpanKind.CONSUMER, attributes=attributes):
        again_in = await run_delivery(deps, UUID(delivery_id), UUID(agency_id))
        log.debug("delivery job done", delivery_id=delivery_id, again_in=again_in)
    if again_in is not None:
        raise Retry(defer=again_in)


async def reconcile_deliveries_job(ctx: dict[str, Any]) -> dict[str, int]:
    """Queue every delivery PostgreSQL says is due but the queue lost (Redis flushed or
    restarted, a crash between commit and enqueue, a worker killed holding a lease).
    Rows already queued are skipped by the enqueue itself (job id = delivery id)."""
    services: Services = ctx["services"]
    kit = services.delivery
    settings = services.settings
    async with services.db.transaction() as conn:
        due = await repository.due_deliveries(
            conn,
            grace_seconds=settings.delivery_reconcile_grace_seconds,
            limit=settings.delivery_reconcile_batch,
        )
        backlog, oldest = await repository.backlog(conn, cap=settings.backpressure_max_backlog + 1)
    added = await kit.queue.enqueue(due) if due else 0
    kit.metrics.reconciled.inc(added)
    kit.metrics.backlog.set(backlog)
    kit.metrics.oldest_due_seconds.set(oldest)
    kit.metrics.queue_depth.set(await kit.queue.depth())
    if added:
        log.warning("reconcile re-enqueued deliveries missing from the queue", count=added)
    return {"due": len(due), "enqueued": added}

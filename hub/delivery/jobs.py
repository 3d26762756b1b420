"""arq jobs of delivery: one job per agency with work (job id names the agency) and the
reconcile cron.

Every outcome (delivered, retrying, dead letter, withheld) is in the ledger when a batch
returns, so arq's result is never kept. What a job leaves behind is only a wake-up: its
agency's timer, armed for the next row that comes due. While the agency's circuit is open the
job itself stays queued (deferred to the moment the circuit half-opens), so the wake-ups of
ingest commits find its id taken and add nothing.
"""

from typing import Any
from uuid import UUID

import structlog
from arq import Retry

from hub.delivery import repository
from hub.delivery.dispatch import DeliveryDeps, Held, run_agency
from hub.delivery.queue import DeliveryQueue
from hub.runtime import Services

log = structlog.get_logger("hub.delivery.jobs")

# A timer never fires sooner than this: a row due "now" that another worker holds is not
# worth a busy loop.
MIN_TIMER_SECONDS = 0.05


async def deliver_agency(ctx: dict[str, Any], agency_id: str) -> None:
    """Deliver one agency's due rows in batches, then arm its timer for what comes due next."""
    deps: DeliveryDeps = ctx["delivery_deps"]
    queue: DeliveryQueue = ctx["services"].delivery.queue
    agency = UUID(agency_id)
    again_in = await run_agency(deps, agency)
    log.debug("delivery job done", agency_id=agency_id, again_in=again_in)
    if isinstance(again_in, Held):
        # Keep this job's id taken until the circuit half-opens (arq queues the job again,
        # deferred): a dead agency's job used to be woken by every ingest commit (40-60 per
        # 10 s in bench/delivery.py) to find the circuit open, on the loop healthy agencies'
        # sends share. An operator's resume brings held jobs forward (`DeliveryQueue.wake_now`).
        raise Retry(defer=max(again_in.seconds, MIN_TIMER_SECONDS))
    if again_in is None:
        return
    if again_in == 0:
        await queue.wake([agency])  # more is due now: the follow-up job takes it
        return
    delay = max(again_in, MIN_TIMER_SECONDS)
    if ctx.get("job_id") == queue.job_id(agency, ":at"):
        # The timer re-arms itself: its own id is taken until it returns.
        raise Retry(defer=delay)
    await queue.wake_later(agency, delay=delay)


async def reconcile_deliveries_job(ctx: dict[str, Any]) -> dict[str, int]:
    """Wake every agency PostgreSQL says has work the queue lost (Redis flushed or restarted,
    a crash between commit and wake-up, a worker killed holding a batch's lease). Agencies
    whose job is already queued are skipped by the wake-up itself."""
    services: Services = ctx["services"]
    kit = services.delivery
    settings = services.settings
    async with services.db.transaction() as conn:
        agencies = await repository.due_agencies(
            conn,
            grace_seconds=settings.delivery_reconcile_grace_seconds,
            limit=settings.delivery_reconcile_batch,
        )
        backlog, oldest = await repository.backlog(conn, cap=settings.backpressure_max_backlog + 1)
    added = await kit.queue.wake(agencies) if agencies else 0
    kit.metrics.reconciled.inc(added)
    kit.metrics.backlog.set(backlog)
    kit.metrics.oldest_due_seconds.set(oldest)
    kit.metrics.queue_depth.set(await kit.queue.depth())
    if added:
        log.warning("reconcile woke agencies whose work was missing from the queue", count=added)
    return {"due_agencies": len(agencies), "woken": added}

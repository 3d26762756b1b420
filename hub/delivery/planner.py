"""Routing at ingest: which agencies each new event is offered to (their subscriptions), as
ledger rows written in the ingest transaction; each agency that got rows is woken right after
it commits."""

from collections.abc import Sequence
from uuid import UUID

import asyncpg
import structlog
from redis.exceptions import RedisError

from hub.delivery import repository
from hub.delivery.metrics import DeliveryMetrics
from hub.delivery.queue import DeliveryQueue
from hub.delivery.repository import PlanRow
from hub.ingest.ports import Routable
from hub.observability import current_traceparent

log = structlog.get_logger(__name__)


class SubscriptionPlanner:
    """Implements ingest's `DeliveryPlanner` port."""

    def __init__(self, queue: DeliveryQueue, metrics: DeliveryMetrics, *, attempt_limit: int):
        self.queue = queue
        self.metrics = metrics
        self.attempt_limit = attempt_limit

    async def plan(
        self, conn: asyncpg.Connection, *, events: Sequence[Routable]
    ) -> list[tuple[UUID, UUID]]:
        """One row per (event, subscribed agency), in the caller's transaction."""
        if not events:
            return []
        return await repository.plan_deliveries(
            conn,
            events=[
                PlanRow(
                    pk=pk,
                    captured_at=captured_at,
                    camera_id=p.event.camera_id,
                    classes=p.classes,
                    max_confidence=p.best,
                )
                for p, (pk, captured_at) in events
            ],
            attempt_limit=self.attempt_limit,
            traceparent=current_traceparent(),  # the ingest request's, continued on delivery
        )

    async def dispatch(self, planned: list[tuple[UUID, UUID]]) -> None:
        """Wake each agency that got committed rows; on a Redis failure, leave them to
        reconcile."""
        if not planned:
            return
        try:
            await self.queue.wake(agency_id for _, agency_id in planned)
        except (RedisError, OSError) as exc:
            self.metrics.enqueue_failures.inc()
            log.warning(
                "enqueue after commit failed; reconcile will queue the deliveries",
                deliveries=len(planned),
                error=type(exc).__name__,
            )

"""Routing at ingest: which agencies each new event is offered to (their subscriptions), as
ledger rows written by the ingest statement itself; each agency that got rows is woken right
after the transaction commits."""

from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from hub.delivery import repository
from hub.delivery.metrics import DeliveryMetrics
from hub.delivery.queue import DeliveryQueue
from hub.ingest.ports import Planned
from hub.observability import current_traceparent

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SubscriptionRouting:
    """Implements ingest's `RoutingSql`: one batch's routing, as a CTE of its events INSERT."""

    params: tuple[object, ...]  # attempt limit, traceparent

    def sql(self, *, first: int, inserted: str) -> str:
        """The CTE body planning the inserted events' deliveries (`plan_of_inserted`)."""
        return repository.plan_of_inserted(first=first, inserted=inserted)


class SubscriptionPlanner:
    """Implements ingest's `DeliveryPlanner` port."""

    def __init__(self, queue: DeliveryQueue, metrics: DeliveryMetrics, *, attempt_limit: int):
        self.queue = queue
        self.metrics = metrics
        self.attempt_limit = attempt_limit

    def routing(self) -> SubscriptionRouting:
        """One row per (accepted event, subscribed agency), written by the events INSERT in
        the caller's transaction; the rows carry the ingest request's trace, continued on
        delivery."""
        return SubscriptionRouting(params=(self.attempt_limit, current_traceparent()))

    async def dispatch(self, planned: Planned) -> None:
        """Wake each agency that got committed rows; on a Redis failure, leave them to
        reconcile."""
        if not planned:
            return
        try:
            await self.queue.wake(planned)
        except (RedisError, OSError) as exc:
            self.metrics.enqueue_failures.inc()
            log.warning(
                "enqueue after commit failed; reconcile will queue the deliveries",
                deliveries=sum(planned.values()),
                error=type(exc).__name__,
            )

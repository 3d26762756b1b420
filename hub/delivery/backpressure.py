"""Back-pressure: ingest refuses new batches (503 + Retry-After) while deliveries are backed
up, so a slow agency turns into edge nodes keeping their spools, not an unbounded ledger.

Both figures are read at most once a second per process and shared by every request.
"""

import time
from dataclasses import dataclass

from hub.delivery import repository
from hub.delivery.metrics import DeliveryMetrics
from hub.delivery.queue import DeliveryQueue
from hub.kit.db import Database
from hub.kit.errors import UnavailableError

REFRESH_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Thresholds from settings."""

    max_backlog: int
    max_queue: int
    retry_after_seconds: int


class BackPressure:
    """The check ingest calls before it accepts a batch."""

    def __init__(
        self, db: Database, queue: DeliveryQueue, metrics: DeliveryMetrics, limits: Limits
    ) -> None:
        self.db = db
        self.queue = queue
        self.metrics = metrics
        self.limits = limits
        self._checked_at = float("-inf")
        self._cause: str | None = None

    async def check(self) -> None:
        """Raise 503 (code `backpressure`) while the backlog or the queue is over its limit."""
        if time.monotonic() - self._checked_at > REFRESH_SECONDS:
            self._cause = await self._measure()
            self._checked_at = time.monotonic()
        if self._cause is not None:
            self.metrics.backpressure.labels(self._cause).inc()
            error = UnavailableError(
                f"deliveries are backed up ({self._cause}); keep the events and retry later",
                retry_after=self.limits.retry_after_seconds,
            )
            error.code = "backpressure"
            raise error

    async def _measure(self) -> str | None:
        async with self.db.transaction() as conn:
            due, oldest = await repository.backlog(conn, cap=self.limits.max_backlog + 1)
        depth = await self.queue.depth()
        self.metrics.backlog.set(due)
        self.metrics.oldest_due_seconds.set(oldest)
        self.metrics.queue_depth.set(depth)
        if due > self.limits.max_backlog:
            return "backlog"
        if depth > self.limits.max_queue:
            return "queue"
        return None

"""Waking agencies: the arq queue holds at most a few jobs per agency, never one per delivery.

The ledger in PostgreSQL says what is due; a job only says "agency A may have work". Its job id
names the agency (`<prefix>deliver:<agency id>`), so a second wake-up while one is queued is a
no-op, through arq's own `enqueue_job`. Two more ids close the gaps that uniqueness opens:

- `...:again`: a wake-up that finds the agency's job already taken (it may be draining its
  last batch and about to return) queues one follow-up, so rows committed at that moment are
  not left to reconcile;
- `...:at`: the timer a job arms for the agency's next retry. A wake-up that finds both jobs
  *running* (both may be past their last claim, about to return) also brings the timer
  forward to a moment from now, so its rows wait a fraction of a second, not for reconcile.

While an agency's circuit is open, its jobs stay queued, deferred to when it half-opens (the
job raises arq's `Retry`): wake-ups then find both ids taken and add nothing, so a dead
agency costs no job per ingest commit. `wake_now` (an operator's resume, which resets the
circuit) brings such held jobs forward.

Reconcile wakes every agency whose rows have been due for longer than a grace period, so a
lost queue (Redis flushed, a crash between commit and wake-up) only delays deliveries.
"""

import time
from collections.abc import Iterable
from uuid import UUID

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix

from hub.kit.redis import RedisStore

DELIVER_FUNCTION = "deliver_agency"
# A wake-up older than this is pointless (reconcile re-creates what is still due).
JOB_EXPIRES_SECONDS = 3600
# How soon the timer fires when a wake-up found both of an agency's jobs running.
FOLLOW_UP_SECONDS = 0.2


class DeliveryQueue:
    """The arq queue as the delivery domain uses it."""

    def __init__(self, redis: RedisStore, *, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self._arq = ArqRedis(pool_or_conn=redis.client.connection_pool)

    def job_id(self, agency_id: UUID, suffix: str = "") -> str:
        """The arq job id of an agency's wake-up (namespaced like every key of this hub)."""
        return f"{self.redis.prefix}deliver:{agency_id}{suffix}"

    async def wake(self, agency_ids: Iterable[UUID]) -> int:
        """Queue a delivery job for each agency that has none queued; how many were new."""
        added = 0
        for agency_id in dict.fromkeys(agency_ids):
            if await self._enqueue(agency_id, ""):
                added += 1
            elif not await self._enqueue(agency_id, ":again") and await self._both_running(
                agency_id
            ):
                await self.wake_later(agency_id, delay=FOLLOW_UP_SECONDS)
        return added

    async def wake_now(self, agency_ids: Iterable[UUID]) -> int:
        """`wake`, and jobs waiting deferred (held by an open circuit, or a timer) are brought
        forward to now (their queue score only); how many jobs were new."""
        agencies = list(dict.fromkeys(agency_ids))
        added = await self.wake(agencies)
        now_ms = int(time.time() * 1000)
        for agency_id in agencies:
            held = {self.job_id(agency_id, s): now_ms for s in ("", ":again", ":at")}
            await self.redis.client.zadd(self.queue_name, held, xx=True, lt=True)
        return added

    async def _both_running(self, agency_id: UUID) -> bool:
        """Whether the agency's job and its follow-up are both running (neither queued)."""
        keys = [in_progress_key_prefix + self.job_id(agency_id, s) for s in ("", ":again")]
        return int(await self.redis.client.exists(*keys)) == len(keys)

    async def wake_later(self, agency_id: UUID, *, delay: float) -> bool:
        """Arm the agency's timer `delay` seconds ahead; an armed timer that would fire later
        is brought forward (its queue score only: arq's job record is left as arq made it).
        True when a new timer was queued."""
        if await self._enqueue(agency_id, ":at", delay=delay):
            return True
        when_ms = int((time.time() + delay) * 1000)
        await self.redis.client.zadd(
            self.queue_name, {self.job_id(agency_id, ":at"): when_ms}, xx=True, lt=True
        )
        return False

    async def _enqueue(self, agency_id: UUID, suffix: str, *, delay: float = 0.0) -> bool:
        job = await self._arq.enqueue_job(
            DELIVER_FUNCTION,
            str(agency_id),
            _job_id=self.job_id(agency_id, suffix),
            _queue_name=self.queue_name,
            _defer_by=delay if delay > 0 else None,
            _expires=JOB_EXPIRES_SECONDS + delay,
        )
        return job is not None

    async def depth(self) -> int:
        """Jobs waiting in the queue (due or deferred)."""
        return int(await self.redis.client.zcard(self.queue_name))

"""Putting deliveries on the arq queue, many at a time, with job id = delivery id.

arq's `enqueue_job` costs a WATCH/MULTI round trip per job; a batch of 100 events for three
agencies would be 300 of them. This writes the same job records arq writes (its own
`serialize_job`, its key prefixes) for a whole batch in one Lua call, keeping arq's rule
that a job id already queued, running or holding a result is not enqueued again.
"""

import time
from collections.abc import Sequence
from uuid import UUID

from arq.constants import expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job

from hub.kit.redis import RedisStore
from hub.observability import current_traceparent

DELIVER_FUNCTION = "deliver"

# KEYS[1]: queue. ARGV: job prefix, result prefix, expires ms, score, then (id, job) pairs.
_ENQUEUE = """
local added = 0
for i = 5, #ARGV, 2 do
    local id = ARGV[i]
    local job_key = ARGV[1] .. id
    if redis.call('EXISTS', job_key, ARGV[2] .. id) == 0 then
        redis.call('PSETEX', job_key, ARGV[3], ARGV[i + 1])
        redis.call('ZADD', KEYS[1], ARGV[4], id)
        added = added + 1
    end
end
return added
"""

# Jobs per Lua call: big enough to amortise the round trip, small enough not to stall Redis.
_CHUNK = 500


class DeliveryQueue:
    """The arq queue as the delivery domain uses it."""

    def __init__(self, redis: RedisStore, *, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self._enqueue = redis.client.register_script(_ENQUEUE)

    async def enqueue(self, planned: Sequence[tuple[UUID, UUID]], *, delay: float = 0.0) -> int:
        """Queue one `deliver(delivery_id, agency_id)` job per row; returns how many were new.

        Inside a trace (an ingest request) each job carries its `traceparent`, so the worker
        continues the same trace; reconcile and replays start new ones.
        """
        added = 0
        traceparent = current_traceparent()
        kwargs = {"traceparent": traceparent} if traceparent else {}
        now_ms = int(time.time() * 1000)
        score = now_ms + int(delay * 1000)
        for start in range(0, len(planned), _CHUNK):
            args: list[bytes | str | int] = [
                job_key_prefix,
                result_key_prefix,
                score - now_ms + expires_extra_ms,
                score,
            ]
            for delivery_id, agency_id in planned[start : start + _CHUNK]:
                job = serialize_job(
                    DELIVER_FUNCTION, (str(delivery_id), str(agency_id)), kwargs, None, now_ms
                )
                args += [str(delivery_id), job]
            added += int(await self._enqueue(keys=[self.queue_name], args=args))
        return added

    async def depth(self) -> int:
        """Jobs waiting in the queue (due or deferred)."""
        return int(await self.redis.client.zcard(self.queue_name))

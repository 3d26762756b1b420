"""Per-agency pacing: a concurrency cap per worker process and a rate limit across all of
them (GCRA in Redis, so N workers together keep to the agency's rate)."""

import asyncio
from uuid import UUID

from hub.kit.redis import RedisStore

# GCRA: KEYS[1] theoretical arrival time (ms). ARGV: interval ms, burst tolerance ms.
# Returns 0 when the call may go now, else how many ms to wait. Redis time, so every
# process agrees on "now".
_GCRA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - tolerance
if wait > 0 then return wait end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now + tolerance + 1000))
return 0
"""


class AgencyLimits:
    """Concurrency semaphores (this process) and the shared rate limiter."""

    def __init__(self, redis: RedisStore) -> None:
        self.redis = redis
        self._gcra = redis.client.register_script(_GCRA)
        self._semaphores: dict[UUID, tuple[int, asyncio.Semaphore]] = {}

    def semaphore(self, agency_id: UUID, size: int) -> asyncio.Semaphore:
        """The agency's semaphore in this process (replaced when its size changes)."""
        current = self._semaphores.get(agency_id)
        if current is None or current[0] != size:
            current = (size, asyncio.Semaphore(size))
            self._semaphores[agency_id] = current
        return current[1]

    async def rate_wait(self, agency_id: UUID, per_second: float) -> float:
        """Seconds to wait before this call may go (0: go now; the slot is taken)."""
        interval = 1000.0 / per_second
        # Allow a burst of up to one second's worth of calls (at least one).
        tolerance = max(0.0, 1000.0 - interval)
        wait_ms = await self._gcra(
            keys=[self.redis.key("rate", str(agency_id))], args=[interval, tolerance]
        )
        return float(wait_ms) / 1000.0

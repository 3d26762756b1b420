"""Per-agency pacing: a concurrency cap per worker process, a rate limit across all of them
(GCRA in Redis, so N workers together keep to the agency's rate), and a slow agency's claim
size (this process), so its batches claim what they can send."""

import asyncio
import time
from uuid import UUID

from hub.kit.redis import RedisStore

# GCRA: KEYS[1] theoretical arrival time (ms). ARGV: interval ms, burst tolerance ms,
# slots wanted. Returns 0 when the slots are granted, else how many ms to wait. Redis time,
# so every process agrees on "now".
_GCRA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * tonumber(ARGV[3])
local wait = new_tat - now - tolerance
if wait > 0 then return wait end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now + tolerance + 1000))
return 0
"""


# Slots are taken from Redis in chunks worth this many seconds of the agency's rate, and
# spent locally: one Redis call per chunk instead of one per delivery.
CHUNK_SECONDS = 0.05


class AgencyLimits:
    """Concurrency semaphores and slow agencies' claim caps (this process), and the shared
    rate limiter."""

    def __init__(self, redis: RedisStore) -> None:
        self.redis = redis
        self._gcra = redis.client.register_script(_GCRA)
        self._semaphores: dict[UUID, tuple[int, asyncio.Semaphore]] = {}
        # agency -> (slots left, monotonic deadline to spend them)
        self._slots: dict[UUID, tuple[int, float]] = {}
        # agency -> most rows its next batch claims (slow agencies only)
        self._claim_caps: dict[UUID, int] = {}

    def claim_cap(self, agency_id: UUID, limit: int) -> int:
        """`limit`, or less for an agency whose recent batches could not send what they
        claimed before their send window closed."""
        return min(limit, self._claim_caps.get(agency_id, limit))

    def note_pace(
        self, agency_id: UUID, *, claimed: int, sent: int, late: bool, floor: int, limit: int
    ) -> None:
        """Learn from a batch: one whose send window closed with rows unsent caps the next
        claim at what it sent (at least `floor`, the agency's concurrency); a batch that
        claimed its cap and sent it all in time doubles the cap, dropped once it reaches
        `limit` (the uncapped claim).

        A slow agency (5 s answers, 16 at a time) used to claim 200 rows per batch, send 48
        and hand 152 back: two row updates, a vault read and a payload decode each for
        nothing, every batch, on the database and loop the healthy agencies share."""
        cap = self._claim_caps.get(agency_id)
        if late:
            self._claim_caps[agency_id] = max(floor, sent, 1)
        elif cap is not None and sent >= claimed >= cap:
            if cap * 2 >= limit:
                del self._claim_caps[agency_id]
            else:
                self._claim_caps[agency_id] = cap * 2

    def semaphore(self, agency_id: UUID, size: int) -> asyncio.Semaphore:
        """The agency's semaphore in this process (replaced when its size changes)."""
        current = self._semaphores.get(agency_id)
        if current is None or current[0] != size:
            current = (size, asyncio.Semaphore(size))
            self._semaphores[agency_id] = current
        return current[1]

    async def rate_wait(self, agency_id: UUID, per_second: float, *, slots: int = 1) -> float:
        """Seconds to wait before `slots` calls may go (0: go now; the slots are taken)."""
        if slots > 1:
            return await self._take(agency_id, per_second, slots)
        left, deadline = self._slots.get(agency_id, (0, 0.0))
        now = time.monotonic()
        if left > 0 and now < deadline:
            self._slots[agency_id] = (left - 1, deadline)
            return 0.0
        chunk = max(1, int(per_second * CHUNK_SECONDS))
        interval = 1000.0 / per_second
        # Slots may be reserved up to one second ahead (a burst of one second's worth of
        # calls), and always at least one chunk.
        tolerance = max(1000.0, interval * chunk)
        wait_ms = await self._gcra(
            keys=[self.redis.key("rate", str(agency_id))], args=[interval, tolerance, chunk]
        )
        if wait_ms:
            return float(wait_ms) / 1000.0
        # Unspent slots lapse with their chunk, so a process cannot hoard old capacity.
        self._slots[agency_id] = (chunk - 1, now + CHUNK_SECONDS)
        return 0.0

    async def _take(self, agency_id: UUID, per_second: float, slots: int) -> float:
        """A batch's slots in one call; a batch is at most one second of the agency's rate,
        the burst GCRA tolerates."""
        interval = 1000.0 / per_second
        wait_ms = await self._gcra(
            keys=[self.redis.key("rate", str(agency_id))],
            args=[interval, max(1000.0, interval * slots), slots],
        )
        return float(wait_ms) / 1000.0

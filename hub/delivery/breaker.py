"""Per-agency circuit breaker, shared by every worker process through Redis.

Closed: deliveries flow. After `threshold` consecutive failures it opens: no attempt is made
(jobs wait, attempts are not spent) until `open_seconds` pass. Then it is half-open: one
probe delivery is let through (a Redis key with NX decides which worker sends it); its
success closes the circuit, its failure opens it again. `failing_since` survives re-opening
and is cleared only by a success: it is what auto-pause measures.
"""

import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal, cast
from uuid import UUID

from hub.delivery.schemas import BreakerState
from hub.kit.redis import RedisStore

# KEYS[1] breaker hash, KEYS[2] probe key; ARGV: now, threshold, failures to add. Returns
# failures, failing_since (as text, to keep float precision through Lua).
_RECORD_FAILURE = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', tonumber(ARGV[3]))
redis.call('HSETNX', KEYS[1], 'failing_since', ARGV[1])
if failures >= tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'opened_at', ARGV[1])
end
redis.call('DEL', KEYS[2])
return {failures, redis.call('HGET', KEYS[1], 'failing_since')}
"""


# A healthy agency's state is read from Redis at most this often per process: at a thousand
# deliveries a second the read would otherwise cost more than the decision it guards. Another
# process's failures are seen this much later, well inside the breaker's own timescale.
CLEAN_TTL_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Permit:
    """Whether an attempt may go now; if not, how long to wait before asking again."""

    allowed: bool
    wait_seconds: float = 0.0
    probe: bool = False
    clean: bool = True  # closed with no failures counted: a success needs no write


class CircuitBreaker:
    """The breakers of all agencies (state in Redis under the hub's prefix)."""

    def __init__(
        self,
        redis: RedisStore,
        *,
        threshold: int,
        open_seconds: float,
        clean_ttl: float = CLEAN_TTL_SECONDS,
    ) -> None:
        self.redis = redis
        self.threshold = threshold
        self.open_seconds = open_seconds
        self.clean_ttl = clean_ttl
        self._record_failure = redis.client.register_script(_RECORD_FAILURE)
        # agency -> monotonic time until which "closed, no failures" may be assumed
        self._clean_until: dict[UUID, float] = {}

    def _keys(self, agency_id: UUID) -> tuple[str, str]:
        return self.redis.key("breaker", str(agency_id)), self.redis.key(
            "breaker", str(agency_id), "probe"
        )

    async def _state(self, key: str) -> dict[bytes, bytes]:
        # redis-py types its commands as sync-or-async; this client is the asyncio one.
        return await cast("Awaitable[dict[bytes, bytes]]", self.redis.client.hgetall(key))

    async def permit(self, agency_id: UUID, *, probe_ttl: float) -> Permit:
        """May an attempt to this agency go now?"""
        if time.monotonic() < self._clean_until.get(agency_id, 0.0):
            return Permit(allowed=True)
        state, probe_key = self._keys(agency_id)
        raw = await self._state(state)
        if not raw:
            self._clean_until[agency_id] = time.monotonic() + self.clean_ttl
            return Permit(allowed=True)
        opened_at = raw.get(b"opened_at")
        if opened_at is None:
            return Permit(allowed=True, clean=False)
        remaining = float(opened_at) + self.open_seconds - time.time()
        if remaining > 0:
            return Permit(allowed=False, wait_seconds=remaining)
        won = await self.redis.client.set(probe_key, b"1", nx=True, px=int(probe_ttl * 1000))
        if won:
            return Permit(allowed=True, probe=True, clean=False)
        # Another worker is probing; ask again shortly.
        return Permit(allowed=False, wait_seconds=min(self.open_seconds, 2.0))

    async def record_success(self, agency_id: UUID, permit: Permit) -> None:
        """Close the circuit and forget failures (no write when there was nothing to clear)."""
        if not permit.clean:
            await self.redis.client.delete(*self._keys(agency_id))

    async def release_probe(self, agency_id: UUID, permit: Permit) -> None:
        """Give back a probe that made no attempt, so another delivery can probe at once."""
        if permit.probe:
            await self.redis.client.delete(self._keys(agency_id)[1])

    async def record_failure(self, agency_id: UUID, *, count: int = 1) -> tuple[int, float]:
        """Count `count` failures (a batch's; opening the circuit at the threshold); returns
        the consecutive failures and since when the agency has been failing (epoch seconds)."""
        self._clean_until.pop(agency_id, None)
        failures, since = await self._record_failure(
            keys=list(self._keys(agency_id)), args=[repr(time.time()), self.threshold, count]
        )
        return int(failures), float(since)

    async def reset(self, agency_id: UUID) -> None:
        """Forget the agency's failures (on resume by an operator)."""
        self._clean_until.pop(agency_id, None)
        await self.redis.client.delete(*self._keys(agency_id))

    async def state(self, agency_id: UUID, name: str) -> BreakerState:
        """The breaker as operators see it."""
        raw = await self._state(self._keys(agency_id)[0])
        failures = int(raw.get(b"failures", 0))
        opened = float(raw[b"opened_at"]) if b"opened_at" in raw else None
        since = float(raw[b"failing_since"]) if b"failing_since" in raw else None
        state: Literal["closed", "open", "half_open"] = "closed"
        if opened is not None:
            state = "open" if time.time() < opened + self.open_seconds else "half_open"
        return BreakerState(
            agency=name,
            state=state,
            consecutive_failures=failures,
            opened_at=opened,
            failing_since=since,
        )

"""Failed sign-ins per account in Redis: exponential backoff, then a temporary lockout.

An attempt is counted when it starts, not when it fails, so a burst of parallel guesses
cannot all slip through before the first failure is written: one Lua call checks the wait
and counts the attempt atomically. A success forgets the account's failures. Names are
counted whether or not the account exists, so a lockout says nothing about existence, and
a locked account is refused before its password is checked, so the answer while locked says
nothing about the password either. Locked accounts are also kept in a sorted set (score:
when the lock ends) that the admin API lists.

Redis is where the rate-limit counters live: losing it forgets failures, never an
account. Without Redis a sign-in is refused (503): the hub cannot bound guessing then.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import Counter
from redis.exceptions import RedisError

from hub.identity.oauth.rules import Throttle
from hub.identity.oauth.schemas import LockoutRead
from hub.kit.errors import UnavailableError
from hub.kit.redis import RedisStore

SIGNIN_FAILURES = Counter(
    "hub_identity_signin_failures_total",
    "Password-grant sign-ins refused, by reason (credentials, throttled).",
    ["reason"],
)
LOCKOUTS = Counter(
    "hub_identity_lockouts_total",
    "Accounts locked after too many failed sign-ins (list: GET /v1/admin/identity/lockouts).",
)

# KEYS[1]: the account's hash. ARGV[1]: forget after (ms); ARGV[2..]: the wait (ms) after
# the 1st, 2nd ... failure, the last value repeating. Returns {allowed, attempts, wait_ms}.
BEGIN_LUA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local n = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local not_before = tonumber(redis.call('HGET', KEYS[1], 'not_before') or '0')
if now < not_before then
  return {0, n, not_before - now}
end
n = n + 1
local delay = tonumber(ARGV[math.min(n, #ARGV - 1) + 1])
redis.call('HSET', KEYS[1], 'failures', n, 'not_before', now + delay)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return {1, n, delay}
"""


class Attempt:
    """One counted sign-in attempt: its number and the wait it sets if it fails."""

    __slots__ = ("account", "number", "wait_ms")

    def __init__(self, account: str, number: int, wait_ms: int) -> None:
        self.account = account
        self.number = number
        self.wait_ms = wait_ms


class ThrottledError(Exception):
    """The account must wait `retry_after` seconds before another attempt."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class SigninThrottle:
    """Counts, delays and locks sign-in attempts per account name."""

    redis: RedisStore
    rules: Throttle = field(default_factory=Throttle)

    def _key(self, account: str) -> str:
        return self.redis.key("signin", account)

    def _locked_key(self) -> str:
        return self.redis.key("signin-locked")

    async def begin(self, account: str) -> Attempt:
        """Count an attempt; `ThrottledError` while the account must still wait."""
        last = self.rules.lock_after
        waits = [str(round(self.rules.delay_after(n) * 1000)) for n in range(1, last + 1)]
        forget = str(self.rules.forget_seconds * 1000)
        with _unavailable():
            result = await self.redis.client.eval(  # type: ignore[misc]
                BEGIN_LUA, 1, self._key(account), forget, *waits
            )
        allowed, number, wait_ms = (int(v) for v in result)
        if not allowed:
            SIGNIN_FAILURES.labels("throttled").inc()
            raise ThrottledError(max(1, -(-wait_ms // 1000)))
        return Attempt(account, number, wait_ms)

    async def failed(self, attempt: Attempt) -> bool:
        """Record that the attempt failed; True when it locked the account."""
        SIGNIN_FAILURES.labels("credentials").inc()
        if not self.rules.locks(attempt.number):
            return False
        with _unavailable():
            seconds, _ = await self.redis.client.time()
            until_ms = int(seconds) * 1000 + attempt.wait_ms
            await self.redis.client.zadd(self._locked_key(), {attempt.account: until_ms})
        LOCKOUTS.inc()
        return True

    async def refund(self, attempt: Attempt) -> None:
        """Uncount an attempt that never checked a password (the hasher was busy): a flood
        of bogus sign-ins must not lock out the users it already delays."""
        key = self._key(attempt.account)
        with _unavailable():
            async with self.redis.client.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, "failures", -1)
                pipe.hset(key, "not_before", "0")
                await pipe.execute()

    async def succeeded(self, account: str) -> None:
        """Forget the account's failures."""
        await self.clear(account)

    async def clear(self, account: str) -> bool:
        """Forget failures and any lock (admin unlock); True when there was something."""
        with _unavailable():
            deleted = await self.redis.client.delete(self._key(account))
            removed = await self.redis.client.zrem(self._locked_key(), account)
        return bool(deleted or removed)

    async def locked(self) -> list[LockoutRead]:
        """Accounts locked right now, the soonest to unlock first."""
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        key = self._locked_key()
        with _unavailable():
            await self.redis.client.zremrangebyscore(key, "-inf", now_ms)
            rows = await self.redis.client.zrange(key, 0, 999, withscores=True)
            found = []
            for member, score in rows:
                raw = await self.redis.client.hget(self._key(member.decode()), "failures")  # type: ignore[misc]
                found.append(
                    LockoutRead(
                        account=member.decode(),
                        failures=int(raw or 0),
                        locked_until=datetime.fromtimestamp(score / 1000, UTC),
                    )
                )
        return found


@contextmanager
def _unavailable() -> Iterator[None]:
    """A Redis outage is a 503: sign-in fails closed."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise UnavailableError(f"Redis: {type(exc).__name__}", retry_after=5) from exc

"""Redis access: one client per process, every key under the configured prefix."""

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.kit.errors import UnavailableError


class RedisStore:
    """A Redis client plus the key prefix this hub (or test run) owns."""

    def __init__(self, url: str, *, prefix: str) -> None:
        # Short timeouts: a Redis outage must turn into a quick 503, not a hung request.
        self.client: Redis = Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
        )
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        """A namespaced key, e.g. key('nonce', node, n) -> 'hub:nonce:<node>:<n>'."""
        return self.prefix + ":".join(parts)

    async def ping(self) -> None:
        """Raise `UnavailableError` unless Redis answers PING."""
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise UnavailableError(f"Redis: {type(exc).__name__}") from exc

    async def claim_once(self, key: str, *, ttl_seconds: int) -> bool:
        """Set `key` only if absent, with a TTL; False when it was already there (a replay)."""
        try:
            return bool(await self.client.set(key, b"1", nx=True, ex=ttl_seconds))
        except (RedisError, OSError) as exc:
            raise UnavailableError(f"Redis: {type(exc).__name__}", retry_after=5) from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

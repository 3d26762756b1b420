"""Redis access: one client per process, every key under the configured prefix.

With Sentinel (`HUB_REDIS_SENTINELS`) the client asks the sentinels for the master and asks
again whenever a connection fails, so a failover costs the commands in flight, never a
restart. What a failover loses (replication is asynchronous) is written down in
docs/deploy.md: recent nonces and rate-limit counters, never an event.
"""

from typing import Any

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.kit.errors import UnavailableError
from hub.settings import Settings

# Short timeouts: a Redis outage must turn into a quick 503, not a hung request.
_TIMEOUTS: dict[str, Any] = {"socket_timeout": 2, "socket_connect_timeout": 2}


def parse_sentinels(text: str) -> list[tuple[str, int]]:
    """`"10.0.0.1:26379, 10.0.0.2:26379"` -> [(host, port), ...]; empty text -> []."""
    hosts = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"sentinel address must be host:port, got {item!r}")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


def _auth(url: str) -> dict[str, Any]:
    """The db index, user and password of a Redis URL (its host is the sentinels' to name)."""
    options = parse_url(url)
    return {k: options[k] for k in ("db", "username", "password") if options.get(k) is not None}


def connect_redis(
    url: str, *, sentinels: list[tuple[str, int]] | None = None, master: str = "mymaster"
) -> Redis:
    """A client on `url`, or on the master the sentinels name when `sentinels` is given."""
    if not sentinels:
        direct: Redis = Redis.from_url(url, health_check_interval=30, **_TIMEOUTS)
        return direct
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        sentinels, sentinel_kwargs=dict(_TIMEOUTS), **_TIMEOUTS
    )
    client: Redis = sentinel.master_for(
        master, redis_class=Redis, health_check_interval=30, **_auth(url)
    )
    return client


def arq_redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings for these hub settings (through Sentinel when configured)."""
    sentinels = parse_sentinels(settings.redis_sentinels)
    if not sentinels:
        return RedisSettings.from_dsn(settings.redis_url)
    auth = _auth(settings.redis_url)
    return RedisSettings(
        host=sentinels,
        sentinel=True,
        sentinel_master=settings.redis_sentinel_master,
        database=int(auth.get("db", 0)),
        username=auth.get("username"),
        password=auth.get("password"),
        conn_timeout=2,
    )


def arq_redis_pool(settings: Settings) -> ArqRedis | None:
    """The worker's arq connection through Sentinel, retrying a failed command for about 10 s
    (a failover takes 2-5 s to be noticed and done), because arq's worker exits on the first
    connection error; None without sentinels (arq connects from `arq_redis_settings`)."""
    sentinels = parse_sentinels(settings.redis_sentinels)
    if not sentinels:
        return None
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        sentinels, sentinel_kwargs=dict(_TIMEOUTS), **_TIMEOUTS
    )
    pool: ArqRedis = sentinel.master_for(
        settings.redis_sentinel_master,
        redis_class=ArqRedis,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=15),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, OSError],
        **_auth(settings.redis_url),
    )
    return pool


class RedisStore:
    """A Redis client plus the key prefix this hub (or test run) owns."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        sentinels: list[tuple[str, int]] | None = None,
        master: str = "mymaster",
    ) -> None:
        self.client: Redis = connect_redis(url, sentinels=sentinels, master=master)
        self.prefix = prefix

    @classmethod
    def from_settings(cls, settings: Settings) -> "RedisStore":
        """The store for HUB_REDIS_URL / HUB_REDIS_SENTINELS and HUB_REDIS_PREFIX."""
        return cls(
            settings.redis_url,
            prefix=settings.redis_prefix,
            sentinels=parse_sentinels(settings.redis_sentinels),
            master=settings.redis_sentinel_master,
        )

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

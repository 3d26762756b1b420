"""Redis side of activation: the notice channel and each process's reported revision.

Redis only speeds convergence up; PostgreSQL says which bundle is active. A lost notice is
caught by the watcher's periodic re-check, and a lost Redis loses only the status page's
per-process view until processes report again.
"""

import os
import socket
from collections.abc import Awaitable
from datetime import timedelta
from typing import cast

import msgspec
import structlog
from redis.exceptions import RedisError

from hub.kit.clock import Clock, utcnow
from hub.kit.redis import RedisStore
from hub.policy.bundles.schemas import ActivationNotice, ProcessRevision

# A process that has not reported for this long is dropped from the status page.
PROCESS_TTL_SECONDS = 60

log = structlog.get_logger("hub.policy.bundles")


def activation_channel(redis: RedisStore) -> str:
    """The pub/sub channel of activation notices: `<prefix>policy:activations`."""
    return redis.key("policy", "activations")


def processes_key(redis: RedisStore) -> str:
    """The hash of process -> last reported revision."""
    return redis.key("policy", "processes")


def process_id(role: str = "") -> str:
    """This process's name on the status page: `[role@]hostname:pid`."""
    base = f"{socket.gethostname()}:{os.getpid()}"
    return f"{role}@{base}" if role else base


async def publish_activation(redis: RedisStore, revision: str, *, clock: Clock = utcnow) -> bool:
    """Tell every process to re-read the active bundle; False (logged) when Redis is down,
    which only delays them until their next periodic check."""
    notice = msgspec.json.encode(ActivationNotice(revision=revision, at=clock()))
    try:
        await redis.client.publish(activation_channel(redis), notice)
    except (RedisError, OSError) as exc:
        log.warning("activation notice not published", revision=revision, error=str(exc))
        return False
    return True


async def report_process_revision(
    redis: RedisStore,
    revision: str,
    *,
    process: str | None = None,
    ttl_seconds: int = PROCESS_TTL_SECONDS,
    clock: Clock = utcnow,
) -> None:
    """Record that this process now evaluates `revision` (refreshes its entry's age)."""
    entry = ProcessRevision(process=process or process_id(), revision=revision, seen_at=clock())
    key = processes_key(redis)
    async with redis.client.pipeline(transaction=True) as pipe:
        pipe.hset(key, entry.process, msgspec.json.encode(entry).decode())
        pipe.expire(key, ttl_seconds)
        await pipe.execute()


async def read_process_revisions(
    redis: RedisStore, *, ttl_seconds: int = PROCESS_TTL_SECONDS, clock: Clock = utcnow
) -> list[ProcessRevision]:
    """Processes that reported within the TTL, by name; older entries are removed."""
    key = processes_key(redis)
    raw = await cast(Awaitable[dict[bytes, bytes]], redis.client.hgetall(key))
    cutoff = clock() - timedelta(seconds=ttl_seconds)
    live: list[ProcessRevision] = []
    stale: list[str] = []
    for field, value in raw.items():
        entry = _decode(value)
        if entry is None or entry.seen_at < cutoff:
            stale.append(field.decode("utf-8", "replace"))
        else:
            live.append(entry)
    if stale:
        await cast(Awaitable[int], redis.client.hdel(key, *stale))
    return sorted(live, key=lambda e: e.process)


def _decode(value: bytes) -> ProcessRevision | None:
    try:
        return msgspec.json.decode(value, type=ProcessRevision)
    except msgspec.DecodeError:
        return None

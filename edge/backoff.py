"""When to try again: exponential backoff with jitter, and the hub's `Retry-After`."""

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

BACKOFF_BASE = 0.5  # seconds
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 300.0
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def backoff_delay(
    attempt: int, rng: random.Random, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP
) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 16))
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


def retry_after(response: httpx.Response, *, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks us to wait (delta or HTTP date), capped."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), RETRY_AFTER_CAP)

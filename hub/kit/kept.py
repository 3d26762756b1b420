"""Registry values a process keeps for a bounded time after the look-up that found them.

The expiry counts from when the look-up started, not when it answered: its snapshot may
predate a change that commits while it runs, and a bound of `ttl` seconds must hold from that
commit. So a change committed at time R is seen by every process from R + `ttl` on at the
latest, without any message between them (ADR 0024). Callers keep only what they found and
look up again whatever they did not find, so an addition is seen at once.
"""

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Kept(Generic[K, V]):
    """Values by key, each trusted until `ttl_seconds` after its look-up started; more than
    `max_entries` empties the map rather than growing it."""

    def __init__(self, *, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl_seconds = ttl_seconds
        self._max_entries = max_entries
        self._kept: dict[K, tuple[float, V]] = {}

    def get(self, key: K, *, now: float) -> V | None:
        """The value while it may still be trusted at `now`; None when absent or expired."""
        kept = self._kept.get(key)
        return kept[1] if kept is not None and now < kept[0] else None

    def keep(self, key: K, value: V, *, looked_up_at: float) -> None:
        """Trust `value` until `ttl_seconds` after the look-up that found it started."""
        if len(self._kept) >= self._max_entries:
            self._kept.clear()
        self._kept[key] = (looked_up_at + self.ttl_seconds, value)

    def forget(self, key: K) -> None:
        """Drop the key's value (a look-up found it gone)."""
        self._kept.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._kept

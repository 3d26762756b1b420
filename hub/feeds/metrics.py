"""Prometheus collectors of the feeds: open live sockets and why sockets were closed."""

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

CLOSE_REASONS = (
    "client",
    "slow_consumer",
    "credentials",
    "forbidden",
    "changed",
    "unavailable",
    "cap",
)


class FeedMetrics:
    """Live-socket gauge and close counter, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.live_sockets = Gauge(
            "hub_feeds_live_sockets",
            "Open live-feed WebSockets per agency (summed over API processes).",
            ["agency"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.live_closed = Counter(
            "hub_feeds_live_closed_total",
            "Live-feed WebSockets closed, by reason: client, slow_consumer, credentials "
            "(token expired or revoked, client disabled), forbidden (policy or agency paused "
            "or disabled), changed (what it may see changed), unavailable, cap.",
            ["reason"],
            registry=registry,
        )


@cache
def default_feed_metrics() -> FeedMetrics:
    """The process's feed metrics, on Prometheus's default registry."""
    return FeedMetrics(REGISTRY)

"""Prometheus collectors of the feeds: open live sockets, why sockets were closed, the
admission of page work (admission.py) and the versions of the cursors readers bring."""

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

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
        self.pages = Counter(
            "hub_feeds_pages_total",
            "Feed page requests (REST and SOAP pages, media) by channel and admission outcome: "
            "admitted, or refused with 503 feeds_busy (over the process's page budget).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.page_wait = Histogram(
            "hub_feeds_page_wait_seconds",
            "Time an admitted feed page waited for its turn.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.page_budget = Gauge(
            "hub_feeds_page_budget_ms_per_second",
            "The page budget's refill in each API process as last applied, in ms of CPU per "
            "second: the full budget, the budget beside pressing ingest, or 1 while ingest "
            "presses on a host with no idle CPU (ADR 0026).",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.cursors = Counter(
            "hub_feeds_cursors_total",
            "Cursors readers brought, by version: 1 (a readable position, issued before "
            "ADR 0042) or 2 (encrypted). Version 1 can be refused once it stays at zero.",
            ["version"],
            registry=registry,
        )
        self.page_cpu = Counter(
            "hub_feeds_page_cpu_seconds_total",
            "Event-loop CPU used by feed page work (what the page budget meters).",
            registry=registry,
        )


@cache
def default_feed_metrics() -> FeedMetrics:
    """The process's feed metrics, on Prometheus's default registry."""
    return FeedMetrics(REGISTRY)

"""Prometheus metrics of deliveries (see hub/policy/metrics.py for the registry pattern)."""

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# Agency calls on loopback take milliseconds; over the internet up to the timeout.
_ATTEMPT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class DeliveryMetrics:
    """The delivery collectors, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "hub_delivery_attempts_total",
            "Delivery attempts by agency and outcome (delivered, retry, dead, withheld).",
            ["agency", "outcome"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "hub_delivery_attempt_seconds",
            "Time of one attempt: release decision, redaction and the adapter call.",
            ["agency"],
            buckets=_ATTEMPT_BUCKETS,
            registry=registry,
        )
        self.deferred = Counter(
            "hub_delivery_deferred_total",
            "Jobs deferred without an attempt, by cause (breaker_open, rate_limited, paused).",
            ["agency", "cause"],
            registry=registry,
        )
        self.breaker_open = Gauge(
            "hub_delivery_breaker_open",
            "1 while an agency's circuit breaker is open or half-open.",
            ["agency"],
            registry=registry,
        )
        self.auto_paused = Counter(
            "hub_delivery_agency_auto_paused_total",
            "Agencies paused automatically after failing for too long. Alert on any increase.",
            ["agency"],
            registry=registry,
        )
        self.backlog = Gauge(
            "hub_delivery_backlog",
            "Active agencies' deliveries due but not yet delivered (counted up to the "
            "back-pressure limit; paused and disabled agencies' rows wait for nobody).",
            registry=registry,
        )
        self.oldest_due_seconds = Gauge(
            "hub_delivery_oldest_due_seconds",
            "Age of the oldest delivery of an active agency that is due but not delivered.",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "hub_delivery_queue_depth",
            "Jobs in the arq queue (due or deferred).",
            registry=registry,
        )
        self.reconciled = Counter(
            "hub_delivery_reconciled_total",
            "Due deliveries the reconcile job found missing from the queue and re-enqueued.",
            registry=registry,
        )
        self.backpressure = Counter(
            "hub_ingest_backpressure_total",
            "Ingest requests refused with 503 because deliveries are backed up, by cause.",
            ["cause"],
            registry=registry,
        )
        self.enqueue_failures = Counter(
            "hub_delivery_enqueue_failures_total",
            "Enqueues after commit that failed (Redis down); reconcile picks the rows up.",
            registry=registry,
        )


@cache
def default_metrics() -> DeliveryMetrics:
    """The process-wide collectors on the default registry."""
    return DeliveryMetrics(REGISTRY)

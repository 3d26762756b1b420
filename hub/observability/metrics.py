"""Prometheus collectors of the observability domain (HTTP, ingest, ledger gauges, edge spools,
retention), made on a registry like hub/policy/metrics.py; `default_metrics()` is the process's.

Gauges carry a `multiprocess_mode` so they merge sensibly when several API and worker
processes write one `PROMETHEUS_MULTIPROC_DIR` (see hub/observability/multiproc.py).
"""

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# API latency: the ingest target is p99 < 250 ms; anything past 10 s is a failure anyway.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

INGEST_STATUSES = ("accepted", "duplicate", "rejected")
# Event-loop lag: a healthy loop wakes within a millisecond or two; 250 ms stalls every client.
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ObservabilityMetrics:
    """The collectors this domain owns, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.http_seconds = Histogram(
            "hub_http_request_seconds",
            "API request latency by route template, method and status code.",
            ["route", "method", "status"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.loop_lag = Histogram(
            "hub_event_loop_lag_seconds",
            "How late the event loop woke a 100 ms sleep: time the loop was blocked.",
            buckets=LOOP_LAG_BUCKETS,
            registry=registry,
        )
        self.loop_lag_max = Gauge(
            "hub_event_loop_lag_max_seconds",
            "Worst event-loop lag of the last 10 s window (max over processes).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.http_connections_recycled = Counter(
            "hub_http_connections_recycled_total",
            "Responses that closed their keep-alive connection (after HUB_API_KEEPALIVE_REQUESTS"
            " requests, sooner on a worker busy with another, or while the process drained).",
            registry=registry,
        )
        self.http_in_flight = Gauge(
            "hub_http_requests_in_flight",
            "Requests being served now (summed over API processes).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.ingest_events = Counter(
            "hub_ingest_events_total",
            "Events in ingested batches by result (accepted, duplicate, rejected).",
            ["status"],
            registry=registry,
        )
        self.dead_letters = Gauge(
            "hub_delivery_dead_letters",
            "Dead-lettered deliveries per agency (replay with `hub deliveries replay`).",
            ["agency"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.circuit_state = Gauge(
            "hub_delivery_circuit_state",
            "1 for each agency's current breaker state (closed, open, half_open), else 0.",
            ["agency", "state"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.edge_spool_depth = Gauge(
            "hub_edge_spool_depth",
            "Events waiting in an edge node's local spool, as the node last reported it.",
            ["node"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.decision_log_capacity = Gauge(
            "hub_policy_decision_log_capacity",
            "Size of the decision-log buffer; fill = hub_policy_decision_log_buffered / this.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.retention_swept = Counter(
            "hub_retention_swept_total",
            "Rows removed (or kept under legal hold) by retention sweeps, by table and outcome.",
            ["table", "outcome"],
            registry=registry,
        )
        self.retention_runs = Counter(
            "hub_retention_runs_total",
            "Retention sweeps by result (ok, failed). Alert when failed increases.",
            ["result"],
            registry=registry,
        )
        self.retention_last_success = Gauge(
            "hub_retention_last_success_timestamp_seconds",
            "Unix time of the last successful retention sweep.",
            registry=registry,
            multiprocess_mode="max",
        )

        # The newest checkpoint's time stays behind when the worker dies ("max" keeps a dead
        # process's value), so `time() - it` keeps growing and the alert still fires.
        self.audit_checkpoint_at = Gauge(
            "hub_audit_checkpoint_last_timestamp_seconds",
            "Unix time of the newest signed audit checkpoint (of the oldest entry while none "
            "is signed). AuditCheckpointStale: older than 3x the interval.",
            registry=registry,
            multiprocess_mode="max",
        )
        self.audit_checkpoint_interval = Gauge(
            "hub_audit_checkpoint_interval_seconds",
            "HUB_AUDIT_CHECKPOINT_SECONDS: how often the audit sealer signs a checkpoint.",
            registry=registry,
            multiprocess_mode="max",
        )
        # Set from the database like the checkpoint's time, so a dead worker leaves it behind.
        self.audit_witness_owed_since = Gauge(
            "hub_audit_witness_owed_since_timestamp_seconds",
            "Unix time of the oldest signed audit checkpoint not yet pushed to the outside "
            "witness (HUB_AUDIT_WITNESS); the time of the last look while the witness has them "
            "all or none is configured. AuditWitnessBehind: older than 3x the interval.",
            registry=registry,
            multiprocess_mode="max",
        )
        self.audit_checkpoints_unwitnessed = Gauge(
            "hub_audit_checkpoints_unwitnessed",
            "Signed audit checkpoints the outside witness has not received yet (counted up to "
            "10,000; 0 without a witness).",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.audit_checkpoint_stale = Gauge(
            "hub_audit_checkpoint_stale",
            "1 while the newest audit checkpoint is older than 3x the interval (as the worker "
            "last saw it), else 0.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )

    def count_ingest(self, *, accepted: int, duplicate: int, rejected: int) -> None:
        """Count the events of one answered batch by result."""
        for status, value in zip(INGEST_STATUSES, (accepted, duplicate, rejected), strict=True):
            if value:
                self.ingest_events.labels(status).inc(value)

    def note_spool_depth(self, node: str, raw: str | None) -> None:
        """Record the spool depth a node reported (`Hub-Spool-Depth` header); junk ignored."""
        if raw is None or not raw.strip().isdigit():
            return
        self.edge_spool_depth.labels(node).set(min(int(raw.strip()), 10**9))

    def record_retention_sweep(
        self, *, table: str, removed: int, held: int = 0, ok: bool = True, at: float | None = None
    ) -> None:
        """Count one retention sweep of `table`: rows removed, rows kept by a legal hold."""
        if removed:
            self.retention_swept.labels(table, "removed").inc(removed)
        if held:
            self.retention_swept.labels(table, "held").inc(held)
        self.retention_runs.labels("ok" if ok else "failed").inc()
        if ok and at is not None:
            self.retention_last_success.set(at)


@cache
def default_metrics() -> ObservabilityMetrics:
    """The process's collectors, on Prometheus's default registry."""
    return ObservabilityMetrics(REGISTRY)


def record_retention_sweep(
    *, table: str, removed: int, held: int = 0, ok: bool = True, at: float | None = None
) -> None:
    """The hook retention calls after each sweep (on the process's default collectors)."""
    default_metrics().record_retention_sweep(table=table, removed=removed, held=held, ok=ok, at=at)

"""Prometheus collectors of the audit appender (ADR 0025), made on a registry like
hub/policy/metrics.py; `default_metrics()` is the process's.

They answer the questions an operator has when audited requests slow down or fail: is the
queue filling (the database cannot keep up), how much does each INSERT carry (group commit's
gain), how long does an INSERT take, and which callers were refused and why.
"""

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# Refusal outcomes, each the `code` of the error the caller got (minus the `audit_` prefix).
REFUSALS = ("busy", "closed", "write_failed", "rejected")
# Entries per INSERT: 1 when idle, up to HUB_AUDIT_APPEND_BATCH (256) under load.
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# An INSERT commits in a WAL flush (about a millisecond on a quiet disk); 10 s is the timeout.
_FLUSH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class AuditMetrics:
    """The appender's collectors, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queued = Gauge(
            "hub_audit_append_queued",
            "Audit entries waiting for an INSERT (summed over processes; each process holds "
            "at most HUB_AUDIT_APPEND_QUEUE).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.batch_entries = Histogram(
            "hub_audit_append_batch_entries",
            "Entries per committed audit INSERT (one WAL flush for all of them).",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.flush_seconds = Histogram(
            "hub_audit_append_flush_seconds",
            "Time of one audit INSERT, connection included, whether it committed or failed.",
            buckets=_FLUSH_BUCKETS,
            registry=registry,
        )
        self.appended = Counter(
            "hub_audit_appended_total",
            "Audit entries committed through the appender.",
            registry=registry,
        )
        self.refused = Counter(
            "hub_audit_append_refused_total",
            "Appends (caller requests) that failed, by outcome: busy (queue full, 503), closed "
            "(shutting down, 503), write_failed (INSERT failed, 503), rejected (PostgreSQL "
            "refused the entry, 500). AuditAppendRefused: busy or write_failed keep rising.",
            ["outcome"],
            registry=registry,
        )
        for outcome in REFUSALS:  # present at 0, so rate() sees the first refusal
            self.refused.labels(outcome)
        self.witness_refusals = Counter(
            "hub_audit_witness_refusals",
            "Checkpoints the verifying witness refused for good (not signed by the key it "
            "knows, or not consistent with the newest it holds: a possible rewrite of the log; "
            "ADR 0043). AuditWitnessRefused: any increase.",
            registry=registry,
        )


@cache
def default_metrics() -> AuditMetrics:
    """The process's audit metrics, on Prometheus's default registry."""
    return AuditMetrics(REGISTRY)
